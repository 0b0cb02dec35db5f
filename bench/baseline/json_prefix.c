/* Baseline for the seed diode "json_prefix": the payload starts with '{' or '['. */
#include "packet_model.h"

SEC("classifier")
int json_prefix(struct __sk_buff *skb)
{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (p.start > 0xFFFF - 1)
		return TC_ACT_SHOT;
	__u8 *b = data + p.start;
	if ((void *)(b + 1) > data_end)
		return TC_ACT_SHOT;
	return (b[0] == '{' || b[0] == '[') ? TC_ACT_OK : TC_ACT_SHOT;
}
