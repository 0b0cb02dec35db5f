/* Baseline for the seed diode "minimal": all [0,16) text. */
#include "packet_model.h"

SEC("classifier")
int minimal(struct __sk_buff *skb)
{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	return ALL_TEXT_PREFIX(skb, p, 16);
}
