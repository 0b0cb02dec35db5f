/* Packet model shared by the hand-written baselines: the same decisions as
 * lagic's prologue (README "The packet model", emit-bpf/src/codegen/packet.rs),
 * written as a C programmer would. parse_payload() returns VERDICT_INSPECT with
 * the payload bounds (frame offsets) filled in, or a final TC verdict.
 * Policies are the seed specs' defaults: ARP and ICMPv6 ND pass (when well
 * formed), other IP protocols and other EtherTypes drop. */
#ifndef LAGIC_BASELINE_PACKET_MODEL_H
#define LAGIC_BASELINE_PACKET_MODEL_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VERDICT_INSPECT (-1)
#define MAX_FRAME 0xFFFF
#define ETH_HLEN 14
#define ETH_ZLEN 60

struct payload {
	__u32 start; /* frame offset of the first payload byte */
	__u32 end;   /* frame offset after the last one (IP length, never the frame) */
};

/* The IP packet must fit the frame; bytes after it are only allowed as the
 * padding of a minimum-size frame. */
static __always_inline int ip_end_ok(__u32 ip_end, __u32 frame_len)
{
	if (ip_end > frame_len)
		return 0;
	return ip_end == frame_len || frame_len <= ETH_ZLEN;
}

static __always_inline int parse_payload(struct __sk_buff *skb, struct payload *p)
{
	if (skb->vlan_present)
		return TC_ACT_SHOT;
	__u32 len = skb->len;
	if (len > MAX_FRAME)
		return TC_ACT_SHOT;
	/* GSO skbs keep most of their payload in page fragments. */
	if (bpf_skb_pull_data(skb, len))
		return TC_ACT_SHOT;
	len = skb->len;
	if (len > MAX_FRAME)
		return TC_ACT_SHOT;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN > data_end)
		return TC_ACT_SHOT;
	__u16 proto = bpf_ntohs(*(__u16 *)(data + 12));
	__u32 l4, ip_end;

	if (proto == 0x0800) {
		__u8 *ip = data + ETH_HLEN;
		if ((void *)(ip + 20) > data_end)
			return TC_ACT_SHOT;
		if ((ip[0] >> 4) != 4)
			return TC_ACT_SHOT;
		__u32 ihl = (ip[0] & 0x0F) * 4;
		if (ihl < 20)
			return TC_ACT_SHOT;
		if (bpf_ntohs(*(__u16 *)(ip + 6)) & 0xBFFF) /* MF or offset: fragment */
			return TC_ACT_SHOT;
		__u32 total = bpf_ntohs(*(__u16 *)(ip + 2));
		if (total < ihl)
			return TC_ACT_SHOT;
		ip_end = total + ETH_HLEN;
		if (!ip_end_ok(ip_end, len))
			return TC_ACT_SHOT;
		if (ip[9] != 6)
			return TC_ACT_SHOT; /* other_ip: drop */
		l4 = ETH_HLEN + ihl;
	} else if (proto == 0x86DD) {
		__u8 *ip = data + ETH_HLEN;
		if ((void *)(ip + 40) > data_end)
			return TC_ACT_SHOT;
		if ((ip[0] >> 4) != 6)
			return TC_ACT_SHOT;
		ip_end = bpf_ntohs(*(__u16 *)(ip + 4)) + ETH_HLEN + 40;
		if (!ip_end_ok(ip_end, len))
			return TC_ACT_SHOT;
		__u8 next = ip[6];
		if (next == 58) { /* ICMPv6: neighbour discovery passes */
			if (ip_end < ETH_HLEN + 44 || (void *)(ip + 44) > data_end)
				return TC_ACT_SHOT;
			__u8 type = ip[40];
			if (type < 133 || type > 137)
				return TC_ACT_SHOT; /* other ICMPv6: other_ip drop */
			/* RFC 4861: hop limit 255 and the type's fixed part. */
			if (ip[7] != 255)
				return TC_ACT_SHOT;
			__u32 msg = ip_end - ETH_HLEN - 40;
			__u32 need = type == 133 ? 8 : type == 134 ? 16 : type == 137 ? 40 : 24;
			return msg >= need ? TC_ACT_OK : TC_ACT_SHOT;
		}
		if (next != 6) /* extension headers and other protocols */
			return TC_ACT_SHOT;
		l4 = ETH_HLEN + 40;
	} else if (proto == 0x0806) {
		/* arp: pass, if an Ethernet/IPv4 request or reply (28-byte body)
		 * with nothing after it but minimum-frame padding. */
		if (len < ETH_HLEN + 28 || len > ETH_ZLEN)
			return TC_ACT_SHOT;
		__u8 *arp = data + ETH_HLEN;
		if ((void *)(arp + 28) > data_end)
			return TC_ACT_SHOT;
		if (bpf_ntohs(*(__u16 *)arp) != 1 || bpf_ntohs(*(__u16 *)(arp + 2)) != 0x0800 ||
		    arp[4] != 6 || arp[5] != 4)
			return TC_ACT_SHOT;
		__u16 op = bpf_ntohs(*(__u16 *)(arp + 6));
		return (op == 1 || op == 2) ? TC_ACT_OK : TC_ACT_SHOT;
	} else {
		return TC_ACT_SHOT; /* VLAN tags in the data, non_ip: drop */
	}

	if (l4 + 20 > ip_end || l4 > ETH_HLEN + 60)
		return TC_ACT_SHOT;
	__u8 *tcp = data + l4;
	if ((void *)(tcp + 20) > data_end)
		return TC_ACT_SHOT;
	__u32 doff = (tcp[12] >> 4) * 4;
	if (doff < 20)
		return TC_ACT_SHOT;
	p->start = l4 + doff;
	if (p->start > ip_end)
		return TC_ACT_SHOT;
	p->end = ip_end;
	if (p->end == p->start)
		return TC_ACT_OK; /* n == 0: pure ACK, SYN, FIN */
	return VERDICT_INSPECT;
}

/* text: printable ASCII 0x20-0x7E plus TAB, LF, CR, as a 128-bit bitmap. */
#define TEXT_LO ((1ULL << 9) | (1ULL << 10) | (1ULL << 13) | 0xFFFFFFFF00000000ULL)
#define TEXT_HI 0x7FFFFFFFFFFFFFFFULL
static __always_inline int is_text(__u8 c)
{
	__u64 bits = c < 64 ? TEXT_LO : TEXT_HI;
	return c < 128 && ((bits >> (c & 63)) & 1);
}

/* text, as a C programmer tests one byte: the common printable range first
 * (one unsigned compare), then TAB, LF, CR. */
#define TEXT_BYTE(c) ((__u8)((c) - 0x20) < 0x5F || (c) == 9 || (c) == 10 || (c) == 13)

/* Every one of the first `k` payload bytes (fewer when n < k) is text.
 * The common case (the whole window present and in the linear area) is one
 * bounds check and a fully unrolled run of byte tests; short payloads take
 * the bounded loop. */
#define ALL_TEXT_PREFIX(skb, p, k)                                              \
	({                                                                      \
		void *data = (void *)(long)(skb)->data;                         \
		void *data_end = (void *)(long)(skb)->data_end;                 \
		__u32 n = (p).end - (p).start;                                  \
		__u32 s = (p).start;                                            \
		int verdict = TC_ACT_OK;                                        \
		if (s > 0xFFFF - (k))                                           \
			verdict = TC_ACT_SHOT;                                  \
		else if (n >= (k)) {                                            \
			__u8 *b = data + s;                                     \
			if ((void *)(b + (k)) > data_end)                       \
				verdict = TC_ACT_SHOT;                          \
			else {                                                  \
				_Pragma("unroll")                               \
				for (int i = 0; i < (k); i++) {                 \
					__u8 c = b[i];                          \
					if (!TEXT_BYTE(c)) {                    \
						verdict = TC_ACT_SHOT;          \
						break;                          \
					}                                       \
				}                                               \
			}                                                       \
		} else {                                                        \
			__u8 *b = data + s;                                     \
			for (int i = 0; i < (k); i++) {                         \
				if (i >= n)                                     \
					break;                                  \
				if ((void *)(b + i + 1) > data_end ||           \
				    !TEXT_BYTE(b[i])) {                         \
					verdict = TC_ACT_SHOT;                  \
					break;                                  \
				}                                               \
			}                                                       \
		}                                                               \
		verdict;                                                        \
	})

/* Scan context for the bpf_loop baselines (hateless, json_depth): whole
 * 16-byte chunks first, then single bytes, like a careful hand-written scan. */
#define CHUNK 16
struct scan_ctx {
	void *data;
	void *data_end;
	__u32 start;
	__u32 chunks;
	__u32 state;
	__u32 aux;
	int failed; /* 1: a byte was out of reach (drop); 2: decided early */
};

static __always_inline void scan_setup(struct __sk_buff *skb, struct payload *p,
				       struct scan_ctx *c, __u32 *loops)
{
	__u32 n = p->end - p->start;
	c->data = (void *)(long)skb->data;
	c->data_end = (void *)(long)skb->data_end;
	c->start = p->start;
	c->chunks = n / CHUNK;
	c->state = 0;
	c->aux = 0;
	c->failed = 0;
	*loops = c->chunks + n % CHUNK;
}

char LICENSE[] SEC("license") = "GPL";

#endif
