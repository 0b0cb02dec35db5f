/* Baseline for the seed diode "printable64": all [0,64) text. */
#include "packet_model.h"

SEC("classifier")
int printable64(struct __sk_buff *skb)
{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	return ALL_TEXT_PREFIX(skb, p, 64);
}
