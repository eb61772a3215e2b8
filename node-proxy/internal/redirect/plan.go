package redirect

import (
	"fmt"
	"net/netip"
	"strings"
)

// The rules are planned as data first: the nftables backend turns each rule
// into netlink expressions, and Ruleset prints the same rules in nft syntax
// for documentation, logs and the admin endpoint.

// hook is where a chain is attached.
type hook int

const (
	hookOutput     hook = iota // locally created packets: the pod's own connections
	hookPrerouting             // packets arriving on the pod's interfaces
)

// chainPlan is one NAT base chain of the table, at priority -100 (dstnat),
// policy accept.
type chainPlan struct {
	name  string
	hook  hook
	rules []rule
}

// ruleKind enumerates the few rule shapes the table uses.
type ruleKind int

const (
	skipInLoopback  ruleKind = iota // iifname "lo" return
	skipOutLoopback                 // oifname "lo" return
	skipMark                        // meta mark <mark> return
	skipSource                      // ip saddr <prefix> return, or ip6 saddr
	skipDport                       // tcp dport <port> return
	redirectTCP                     // meta l4proto tcp redirect to :<port>
)

// rule is one rule; which fields matter depends on kind.
type rule struct {
	kind   ruleKind
	prefix netip.Prefix // skipSource
	port   uint16       // skipDport, redirectTCP
	mark   uint32       // skipMark
}

// String prints r in nft syntax, as `nft list table inet weft` shows it.
func (r rule) String() string {
	switch r.kind {
	case skipInLoopback:
		return `iifname "lo" return`
	case skipOutLoopback:
		return `oifname "lo" return`
	case skipMark:
		return fmt.Sprintf("meta mark 0x%08x return", r.mark)
	case skipSource:
		family, addr := "ip", r.prefix.String()
		if r.prefix.Addr().Is6() {
			family = "ip6"
		}
		if r.prefix.IsSingleIP() {
			addr = r.prefix.Addr().String()
		}
		return fmt.Sprintf("%s saddr %s return", family, addr)
	case skipDport:
		return fmt.Sprintf("tcp dport %d return", r.port)
	case redirectTCP:
		return fmt.Sprintf("meta l4proto tcp redirect to :%d", r.port)
	}
	return fmt.Sprintf("<unknown rule kind %d>", r.kind)
}

// plan returns the chains for cfg, which must be complete (defaults applied,
// validated). Order matters within a chain: the first matching rule wins.
func plan(cfg Config) []chainPlan {
	outbound := chainPlan{name: "outbound", hook: hookOutput, rules: []rule{
		{kind: skipOutLoopback},
		{kind: skipMark, mark: cfg.Mark},
		{kind: redirectTCP, port: cfg.OutboundPort},
	}}
	inbound := chainPlan{name: "inbound", hook: hookPrerouting, rules: []rule{{kind: skipInLoopback}}}
	for _, p := range cfg.ProbeSources {
		inbound.rules = append(inbound.rules, rule{kind: skipSource, prefix: p})
	}
	inbound.rules = append(inbound.rules,
		rule{kind: skipDport, port: cfg.TunnelPort},
		rule{kind: redirectTCP, port: cfg.InboundPort},
	)
	return []chainPlan{outbound, inbound}
}

// Ruleset returns, in nft syntax, the table Install would create for cfg.
func Ruleset(cfg Config) (string, error) {
	cfg, err := cfg.complete()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, c := range plan(cfg) {
		if i > 0 {
			b.WriteString("\n")
		}
		// Both chains run at priority -100, which nft calls dstnat at
		// prerouting but has no name for at output.
		hookPrio := "output priority -100"
		if c.hook == hookPrerouting {
			hookPrio = "prerouting priority dstnat"
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.name)
		fmt.Fprintf(&b, "\t\ttype nat hook %s; policy accept;\n", hookPrio)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String(), nil
}
