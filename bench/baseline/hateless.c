/* Baseline for the seed diode "hateless": no "hate" in any case mix anywhere
 * in the payload. A KMP-style matcher over the whole payload inside bpf_loop
 * (a plain loop cannot cover 64 KiB), 16 bytes per iteration. "hate" has no
 * self-overlap, so on a mismatch the only restart is a fresh 'h'. */
#include "packet_model.h"

#define WORD 0x65746168u /* "hate", little-endian: byte s is the letter expected in state s */

static __always_inline __u32 step(__u32 s, __u8 c)
{
	__u8 lower = c | 0x20; /* only 'X' and 'x' map to 'x' */
	__u8 want = (WORD >> (s * 8)) & 0xFF;
	return lower == want ? s + 1 : (lower == 'h');
}

static long hate_chunk(__u32 idx, void *arg)
{
	struct scan_ctx *c = arg;
	__u32 s = c->state;
	if (idx < c->chunks) {
		__u32 off = c->start + idx * CHUNK;
		if (off > 0xFFFF - CHUNK)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + CHUNK) > c->data_end)
			goto fail;
#pragma unroll
		for (int i = 0; i < CHUNK; i++) {
			s = step(s, b[i]);
			if (s == 4)
				goto found;
		}
	} else {
		__u32 off = c->start + c->chunks * CHUNK + (idx - c->chunks);
		if (off > 0xFFFF - 1)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + 1) > c->data_end)
			goto fail;
		s = step(s, b[0]);
		if (s == 4)
			goto found;
	}
	c->state = s;
	return 0;
found:
	c->failed = 2;
	return 1;
fail:
	c->failed = 1;
	return 1;
}

SEC("classifier")
int hateless(struct __sk_buff *skb)
{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	struct scan_ctx c;
	__u32 loops;
	scan_setup(skb, &p, &c, &loops);
	bpf_loop(loops, hate_chunk, &c, 0);
	return c.failed ? TC_ACT_SHOT : TC_ACT_OK;
}
