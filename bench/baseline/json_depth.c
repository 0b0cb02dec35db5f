/* Baseline for the seed diode "json_depth": bracket depth never above 2,
 * brackets inside JSON string literals ignored. The whole payload inside
 * bpf_loop, 16 bytes per iteration. State: depth in c->state, string mode in
 * c->aux (0 code, 1 in a string, 2 after a backslash in a string). */
#include "packet_model.h"

#define MAX_DEPTH 2

/* Returns 0 when the depth limit is exceeded. */
static __always_inline int step(__u32 *depth, __u32 *mode, __u8 c)
{
	if (*mode == 1) {
		if (c == '\\')
			*mode = 2;
		else if (c == '"')
			*mode = 0;
	} else if (*mode == 2) {
		*mode = 1;
	} else if (c == '"') {
		*mode = 1;
	} else if (c == '{' || c == '[') {
		if (++*depth > MAX_DEPTH)
			return 0;
	} else if (c == '}' || c == ']') {
		if (*depth)
			--*depth;
	}
	return 1;
}

static long depth_chunk(__u32 idx, void *arg)
{
	struct scan_ctx *c = arg;
	__u32 depth = c->state, mode = c->aux;
	if (idx < c->chunks) {
		__u32 off = c->start + idx * CHUNK;
		if (off > 0xFFFF - CHUNK)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + CHUNK) > c->data_end)
			goto fail;
#pragma unroll
		for (int i = 0; i < CHUNK; i++)
			if (!step(&depth, &mode, b[i]))
				goto too_deep;
	} else {
		__u32 off = c->start + c->chunks * CHUNK + (idx - c->chunks);
		if (off > 0xFFFF - 1)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + 1) > c->data_end)
			goto fail;
		if (!step(&depth, &mode, b[0]))
			goto too_deep;
	}
	c->state = depth;
	c->aux = mode;
	return 0;
too_deep:
	c->failed = 2;
	return 1;
fail:
	c->failed = 1;
	return 1;
}

SEC("classifier")
int json_depth(struct __sk_buff *skb)
{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	struct scan_ctx c;
	__u32 loops;
	scan_setup(skb, &p, &c, &loops);
	bpf_loop(loops, depth_chunk, &c, 0);
	return c.failed ? TC_ACT_SHOT : TC_ACT_OK;
}
