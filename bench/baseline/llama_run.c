/*
 * llama_run: a plain C implementation of llama2 inference (the legacy
 * llama2.c checkpoint and tokenizer formats), written for lagic's benchmark
 * as the C side to compare lagic-enclave's Rust forward pass against.
 *
 * Greedy decoding only (argmax), which is deterministic, so that the text
 * can be compared byte for byte with `lagic-enclave complete --temperature 0`.
 *
 *   llama_run MODEL TOKENIZER PROMPT MAX_TOKENS
 *
 * prints the prompt and its continuation (one line) to stdout and
 * "llama_run: N forward passes in S s: T tokens/s" to stderr; S is the time
 * from encoding the prompt to the last forward pass, measured like
 * lagic-enclave's `complete`. Build single-threaded with
 * `gcc -Ofast -march=native`, or with `-fopenmp` to split each matrix
 * product's rows over OMP_NUM_THREADS threads.
 *
 * The checkpoint is memory-mapped and read in place.
 */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int dim, hidden, layers, heads, kv_heads, vocab, seq_len;
    int shared;
} Shape;

typedef struct {
    const float *embed, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_out, *cls;
} Tensors;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "llama_run: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) die("out of memory", NULL);
    return p;
}

/* ---- model ---------------------------------------------------------- */

static const float *map_model(const char *path, Shape *s, Tensors *t) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("cannot open model", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 28) die("model too short", path);
    const void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) die("cannot map model", path);
    close(fd);
    int32_t h[7];
    memcpy(h, base, sizeof h);
    s->dim = h[0], s->hidden = h[1], s->layers = h[2], s->heads = h[3];
    s->kv_heads = h[4], s->shared = h[5] > 0, s->vocab = abs(h[5]), s->seq_len = h[6];
    if (s->dim <= 0 || s->hidden <= 0 || s->layers <= 0 || s->heads <= 0 || s->kv_heads <= 0 ||
        s->seq_len <= 0 || s->dim % s->heads || s->heads % s->kv_heads)
        die("bad model header", path);
    size_t d = s->dim, hd = s->hidden, L = s->layers, v = s->vocab;
    size_t head = d / s->heads, kv = head * s->kv_heads;
    const float *p = (const float *)((const char *)base + 28);
    t->embed = p;   p += v * d;
    t->rms_att = p; p += L * d;
    t->wq = p;      p += L * d * d;
    t->wk = p;      p += L * d * kv;
    t->wv = p;      p += L * d * kv;
    t->wo = p;      p += L * d * d;
    t->rms_ffn = p; p += L * d;
    t->w1 = p;      p += L * d * hd;
    t->w2 = p;      p += L * hd * d;
    t->w3 = p;      p += L * d * hd;
    t->rms_out = p; p += d;
    p += (size_t)s->seq_len * head; /* the two unused RoPE tables */
    t->cls = s->shared ? t->embed : p;
    if (!s->shared) p += v * d;
    if ((const char *)p - (const char *)base != st.st_size) die("model size does not match its header", path);
    return p;
}

/* ---- forward pass --------------------------------------------------- */

typedef struct {
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *kcache, *vcache;
} State;

static void rmsnorm(float *out, const float *x, const float *w, int n) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / n + 1e-5f);
    for (int i = 0; i < n; i++) out[i] = w[i] * (inv * x[i]);
}

/* out[r] = sum_c w[r][c] * x[c] for `rows` rows of `cols` columns. */
static void matvec(float *out, const float *x, const float *w, int rows, int cols) {
#pragma omp parallel for
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * cols;
        float acc = 0.0f;
        for (int c = 0; c < cols; c++) acc += row[c] * x[c];
        out[r] = acc;
    }
}

static void softmax(float *x, int n) {
    float top = x[0];
    for (int i = 1; i < n; i++) if (x[i] > top) top = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - top); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

static const float *step(const Shape *s, const Tensors *t, State *st, int token, int pos) {
    int d = s->dim, hd = s->hidden, head = d / s->heads, kv = head * s->kv_heads;
    int group = s->heads / s->kv_heads;
    memcpy(st->x, t->embed + (size_t)token * d, sizeof(float) * d);
    for (int l = 0; l < s->layers; l++) {
        rmsnorm(st->xb, st->x, t->rms_att + (size_t)l * d, d);
        float *k = st->kcache + ((size_t)l * s->seq_len + pos) * kv;
        float *v = st->vcache + ((size_t)l * s->seq_len + pos) * kv;
        matvec(st->q, st->xb, t->wq + (size_t)l * d * d, d, d);
        matvec(k, st->xb, t->wk + (size_t)l * d * kv, kv, d);
        matvec(v, st->xb, t->wv + (size_t)l * d * kv, kv, d);
        /* rotary embedding: rotate pairs (2j, 2j+1) of each head */
        for (int i = 0; i < d; i += 2) {
            float theta = pos / powf(10000.0f, (float)(i % head) / (float)head);
            float c = cosf(theta), sn = sinf(theta);
            float a = st->q[i], b = st->q[i + 1];
            st->q[i] = a * c - b * sn;
            st->q[i + 1] = a * sn + b * c;
            if (i < kv) {
                a = k[i], b = k[i + 1];
                k[i] = a * c - b * sn;
                k[i + 1] = a * sn + b * c;
            }
        }
        const float *keys = st->kcache + (size_t)l * s->seq_len * kv;
        const float *vals = st->vcache + (size_t)l * s->seq_len * kv;
        float scale = 1.0f / sqrtf((float)head);
#pragma omp parallel for
        for (int h = 0; h < s->heads; h++) {
            const float *q = st->q + h * head;
            float *att = st->att + (size_t)h * s->seq_len;
            int off = (h / group) * head;
            for (int tpos = 0; tpos <= pos; tpos++) {
                const float *key = keys + (size_t)tpos * kv + off;
                float dot = 0.0f;
                for (int i = 0; i < head; i++) dot += q[i] * key[i];
                att[tpos] = dot * scale;
            }
            softmax(att, pos + 1);
            float *out = st->xb + h * head;
            memset(out, 0, sizeof(float) * head);
            for (int tpos = 0; tpos <= pos; tpos++) {
                const float *val = vals + (size_t)tpos * kv + off;
                for (int i = 0; i < head; i++) out[i] += att[tpos] * val[i];
            }
        }
        matvec(st->xb2, st->xb, t->wo + (size_t)l * d * d, d, d);
        for (int i = 0; i < d; i++) st->x[i] += st->xb2[i];
        rmsnorm(st->xb, st->x, t->rms_ffn + (size_t)l * d, d);
        matvec(st->hb, st->xb, t->w1 + (size_t)l * d * hd, hd, d);
        matvec(st->hb2, st->xb, t->w3 + (size_t)l * d * hd, hd, d);
        for (int i = 0; i < hd; i++) {
            float a = st->hb[i];
            st->hb[i] = a / (1.0f + expf(-a)) * st->hb2[i];
        }
        matvec(st->xb, st->hb, t->w2 + (size_t)l * d * hd, d, hd);
        for (int i = 0; i < d; i++) st->x[i] += st->xb[i];
    }
    rmsnorm(st->xb, st->x, t->rms_out, d);
    matvec(st->logits, st->xb, t->cls, s->vocab, d);
    return st->logits;
}

/* ---- tokenizer ------------------------------------------------------ */

typedef struct {
    int n, max_len;
    char **piece;
    int *len;
    float *score;
    int *sorted; /* ids ordered by piece bytes, then id */
} Vocab;

static const Vocab *sort_vocab;

static int cmp_bytes(const char *a, int la, const char *b, int lb) {
    int m = la < lb ? la : lb;
    int c = memcmp(a, b, (size_t)m);
    return c ? c : (la > lb) - (la < lb);
}

static int cmp_ids(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    int c = cmp_bytes(sort_vocab->piece[a], sort_vocab->len[a], sort_vocab->piece[b], sort_vocab->len[b]);
    return c ? c : (a > b) - (a < b);
}

static void load_vocab(const char *path, int n, Vocab *v) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open tokenizer", path);
    v->n = n;
    v->piece = xcalloc((size_t)n, sizeof(char *));
    v->len = xcalloc((size_t)n, sizeof(int));
    v->score = xcalloc((size_t)n, sizeof(float));
    v->sorted = xcalloc((size_t)n, sizeof(int));
    if (fread(&v->max_len, 4, 1, f) != 1) die("tokenizer truncated", path);
    for (int i = 0; i < n; i++) {
        int len;
        if (fread(&v->score[i], 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0)
            die("tokenizer truncated", path);
        v->piece[i] = xcalloc((size_t)len + 1, 1);
        if (len && fread(v->piece[i], (size_t)len, 1, f) != 1) die("tokenizer truncated", path);
        v->len[i] = len;
        v->sorted[i] = i;
    }
    fclose(f);
    sort_vocab = v;
    qsort(v->sorted, (size_t)n, sizeof(int), cmp_ids);
}

/* Lowest id whose piece is exactly bytes[0..n), or -1. */
static int lookup(const Vocab *v, const char *bytes, int n) {
    if (n == 0) return -1;
    int lo = 0, hi = v->n;
    while (lo < hi) { /* first entry not below `bytes` */
        int mid = lo + (hi - lo) / 2, id = v->sorted[mid];
        if (cmp_bytes(v->piece[id], v->len[id], bytes, n) < 0) lo = mid + 1; else hi = mid;
    }
    if (lo < v->n) {
        int id = v->sorted[lo];
        if (cmp_bytes(v->piece[id], v->len[id], bytes, n) == 0) return id;
    }
    return -1;
}

static int utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

/* BOS, a leading space, one piece per UTF-8 character (or its bytes as
 * byte pieces, id = byte + 3), then merge the best-scoring adjacent pair
 * (leftmost on ties) until no pair is a piece. Returns the count. */
static int encode(const Vocab *v, const char *text, int *out) {
    int n = 0;
    out[n++] = 1;
    int start = n;
    if (*text) {
        int id = lookup(v, " ", 1);
        out[n++] = id >= 0 ? id : ' ' + 3;
    }
    for (const char *p = text; *p;) {
        int l = utf8_len((unsigned char)*p);
        int avail = (int)strnlen(p, (size_t)l);
        if (avail < l) l = avail;
        int id = lookup(v, p, l);
        if (id >= 0) out[n++] = id;
        else for (int i = 0; i < l; i++) out[n++] = (unsigned char)p[i] + 3;
        p += l;
    }
    char *pair = xcalloc((size_t)v->max_len * 2 + 2, 1);
    for (;;) {
        int best = -1, best_id = -1;
        float best_score = 0.0f;
        for (int i = start; i + 1 < n; i++) {
            int la = v->len[out[i]], lb = v->len[out[i + 1]];
            memcpy(pair, v->piece[out[i]], (size_t)la);
            memcpy(pair + la, v->piece[out[i + 1]], (size_t)lb);
            int id = lookup(v, pair, la + lb);
            if (id >= 0 && (best < 0 || v->score[id] > best_score)) {
                best = i, best_id = id, best_score = v->score[id];
            }
        }
        if (best < 0) break;
        out[best] = best_id;
        memmove(out + best + 1, out + best + 2, sizeof(int) * (size_t)(n - best - 2));
        n--;
    }
    free(pair);
    return n;
}

static void print_token(const Vocab *v, int prev, int tok) {
    const char *p = v->piece[tok];
    int len = v->len[tok];
    unsigned int byte;
    if (len == 6 && sscanf(p, "<0x%02X>", &byte) == 1 && p[5] == '>') {
        putchar((int)byte);
        return;
    }
    if (prev == 1 && len > 0 && p[0] == ' ') p++, len--;
    fwrite(p, 1, (size_t)len, stdout);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: llama_run MODEL TOKENIZER PROMPT MAX_TOKENS\n");
        return 2;
    }
    Shape s;
    Tensors t;
    map_model(argv[1], &s, &t);
    Vocab v;
    load_vocab(argv[2], s.vocab, &v);
    long max_tokens = atol(argv[4]);
    int kv = s.dim / s.heads * s.kv_heads;
    State st = {
        xcalloc((size_t)s.dim, 4), xcalloc((size_t)s.dim, 4), xcalloc((size_t)s.dim, 4),
        xcalloc((size_t)s.hidden, 4), xcalloc((size_t)s.hidden, 4), xcalloc((size_t)s.dim, 4),
        xcalloc((size_t)s.heads * s.seq_len, 4), xcalloc((size_t)s.vocab, 4),
        xcalloc((size_t)s.layers * s.seq_len * kv, 4), xcalloc((size_t)s.layers * s.seq_len * kv, 4),
    };
    double started = now();
    int *prompt = xcalloc(strlen(argv[3]) * 4 + 3, sizeof(int));
    int n_prompt = encode(&v, argv[3], prompt);
    if (n_prompt > s.seq_len) die("prompt longer than the context", NULL);
    long steps = n_prompt - 1 + max_tokens;
    if (steps > s.seq_len) steps = s.seq_len;
    int token = prompt[0], pos = 0, prev = token; /* BOS itself prints nothing */
    while (pos < steps) {
        const float *logits = step(&s, &t, &st, token, pos);
        int next;
        if (pos + 1 < n_prompt) {
            next = prompt[pos + 1];
        } else {
            next = 0;
            for (int i = 1; i < s.vocab; i++) if (logits[i] > logits[next]) next = i;
        }
        pos++;
        if (next == 1) break;
        print_token(&v, prev, next);
        prev = token = next;
    }
    double secs = now() - started;
    putchar('\n');
    fflush(stdout);
    fprintf(stderr, "llama_run: %d forward passes in %.3f s: %.1f tokens/s\n", pos, secs, pos / secs);
    return 0;
}
