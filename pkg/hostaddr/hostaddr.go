// Package hostaddr is the one home of the rules for host addresses: how an
// address is written canonically (so two spellings of one host compare
// equal), and which addresses the operator must never connect to.
//
// An address is an IPv4 or IPv6 address or a DNS name. Its canonical form
// is the IP address as net/netip prints it (an IPv4-mapped IPv6 address as
// the IPv4 address it carries), or the DNS name in lower case without a
// trailing dot.
//
// Refused, whatever the spelling: link-local addresses (169.254.0.0/16,
// which holds the cloud instance metadata service at 169.254.169.254, and
// fe80::/10), multicast (224.0.0.0/4, ff00::/8), the unspecified addresses
// (0.0.0.0, ::) and the IPv4 broadcast address 255.255.255.255, and those
// IPv4 addresses written in the NAT64 prefix 64:ff9b::/96. Loopback is
// allowed. A DNS name can only be judged by what it resolves to: pkg/remote
// checks every resolved address with CheckIP before it connects.
package hostaddr

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/openwmco/wmco/pkg/bounded"
)

// MaxLength is the longest address: a DNS name has at most 253 characters.
const MaxLength = 253

// ForbiddenError reports an IP address the operator never connects to.
type ForbiddenError struct {
	// Addr is the refused IP address, canonical.
	Addr string
	// Reason says in words why it is refused.
	Reason string
}

// Error implements error.
func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("address %s is refused: %s", e.Addr, e.Reason)
}

var (
	dnsLabel = `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`
	dnsName  = regexp.MustCompile(`^` + dnsLabel + `(\.` + dnsLabel + `)*$`)
	// hexNumber is a last label that resolvers in the inet_aton tradition
	// read as a number (0xa9fea9fe is 169.254.169.254).
	hexNumber = regexp.MustCompile(`^0x[0-9a-f]*$`)
)

// Normalize returns the canonical form of a host address. It returns a
// *ForbiddenError for an IP address the operator must never connect to
// (see CheckIP), and another error, saying what is wrong, for a string
// that is neither an IP address nor a DNS name. Surrounding white space is
// ignored; an IPv6 zone is refused (it cannot be reached from the cluster).
func Normalize(s string) (string, error) {
	addr, ip, err := canonical(s)
	if err != nil {
		return "", err
	}
	if ip.IsValid() {
		if err := CheckIP(ip); err != nil {
			return "", err
		}
	}
	return addr, nil
}

// Key is the form under which addresses are compared, for instance to find
// the WindowsInstance of a host: the canonical form of any IP address or DNS
// name, refused ones included, and for a string that is neither the string
// trimmed and in lower case, so that it still equals itself.
func Key(s string) string {
	addr, _, err := canonical(s)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(s))
	}
	return addr
}

// canonical checks the syntax of s and returns its canonical form, and the
// IP address when s is one.
func canonical(s string) (string, netip.Addr, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", netip.Addr{}, errors.New("host is empty")
	case len(strings.TrimSuffix(s, ".")) > MaxLength:
		// Not quoted: it is user input of any length.
		return "", netip.Addr{}, fmt.Errorf("host is %d characters long; a host name has at most %d", len(s), MaxLength)
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return "", netip.Addr{}, fmt.Errorf("host %s has an IPv6 zone, which cannot be reached from the cluster", bounded.Quote(s))
		}
		ip = ip.Unmap()
		return ip.String(), ip, nil
	}
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	if !dnsName.MatchString(name) {
		return "", netip.Addr{}, fmt.Errorf("host %s is neither an IP address nor a DNS name", bounded.Quote(s))
	}
	if looksNumeric(name) {
		return "", netip.Addr{}, fmt.Errorf("host %s is not a valid IPv4 address", bounded.Quote(s))
	}
	return name, netip.Addr{}, nil
}

// looksNumeric catches malformed IPv4 addresses (10.1.42, 10.1.42.256,
// 010.1.42.1, 0xa9fea9fe) that would otherwise pass as DNS names: a name
// whose last label is a number. No top-level domain is one.
func looksNumeric(name string) bool {
	last := name[strings.LastIndex(name, ".")+1:]
	if _, err := strconv.Atoi(last); err == nil {
		return true
	}
	return hexNumber.MatchString(last)
}

var (
	metadataIP = netip.AddrFrom4([4]byte{169, 254, 169, 254})
	broadcast  = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
)

// CheckIP returns a *ForbiddenError when ip is an address the operator
// must never connect to: link-local (169.254.0.0/16, fe80::/10), multicast
// (224.0.0.0/4, ff00::/8), unspecified (0.0.0.0, ::), the IPv4 broadcast
// address, or one of those IPv4 addresses in the NAT64 prefix
// 64:ff9b::/96. An IPv4-mapped IPv6 address is judged as the IPv4 address
// it carries; a zone is ignored. Loopback and every other unicast address
// are allowed.
func CheckIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return errors.New("not an IP address")
	}
	ip = ip.WithZone("").Unmap()
	reason := forbiddenReason(ip)
	if reason == "" && nat64.Contains(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if r := forbiddenReason(v4); r != "" {
			reason = fmt.Sprintf("it is %s in the NAT64 prefix 64:ff9b::/96, and %s", v4, r)
		}
	}
	if reason == "" {
		return nil
	}
	return &ForbiddenError{Addr: ip.String(), Reason: reason}
}

// forbiddenReason says why ip (unmapped, without zone) is refused, or "".
func forbiddenReason(ip netip.Addr) string {
	const never = "; the operator never connects to one"
	switch {
	case ip == metadataIP:
		return "it is the cloud instance metadata address (link-local, 169.254.0.0/16)" + never
	case ip.Is4() && ip.IsLinkLocalUnicast():
		return "it is a link-local address (169.254.0.0/16), where clouds serve instance metadata" + never
	case ip.IsLinkLocalUnicast():
		return "it is an IPv6 link-local address (fe80::/10), reachable only on one network link" + never
	case ip.Is4() && ip.IsMulticast():
		return "it is a multicast address (224.0.0.0/4), which names a group, not a host"
	case ip.IsMulticast():
		return "it is an IPv6 multicast address (ff00::/8), which names a group, not a host"
	case ip.IsUnspecified():
		return "it is the unspecified address, which names no host"
	case ip == broadcast:
		return "it is the IPv4 broadcast address, which names no host"
	}
	return ""
}
