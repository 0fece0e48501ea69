// Package inventory parses the windows-instances ConfigMap, WMCO's host
// inventory format, strictly:
//
//	data:
//	  10.1.42.1: |-
//	    username=Administrator
//	  win-2.example.com: |-
//	    username=Administrator
//	    port=2222
//	    nodeName=win-2
//	    hostKey=ssh-ed25519 AAAA...
//
// Each key is a host (IPv4 address or DNS name; ConfigMap keys cannot hold
// the colons of an IPv6 address, so IPv6 hosts are listed as WindowsInstance
// objects instead). Each value is key=value lines: username is required;
// port, nodeName and hostKey are optional. A bad entry is reported with its
// key and reason and never stops the good entries. Hosts the operator
// never connects to (link-local, such as the cloud metadata address
// 169.254.169.254, multicast, unspecified, broadcast: see pkg/hostaddr)
// are bad entries. Reasons quote at most a bounded prefix of a value.
package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/openwmco/wmco/pkg/bounded"
	"github.com/openwmco/wmco/pkg/hostaddr"
)

// Entry is one valid host of the inventory.
type Entry struct {
	// Key is the ConfigMap key as written.
	Key string
	// Address is the normalised host: a canonical IP address or a
	// lower-case DNS name.
	Address  string
	Username string
	// Port is 0 when not given (the API's default, 22, applies).
	Port     int32
	NodeName string
	HostKey  string
}

// Problem is one rejected entry.
type Problem struct {
	// Key is the ConfigMap key as written.
	Key string
	// Address is the normalised host when the key names one (the value
	// may be at fault, or the host is one the operator never connects
	// to), so the caller can leave an existing instance of that host
	// alone; else "".
	Address string
	// Reason says what is wrong, in words fit for an Event.
	Reason string
}

var (
	// Same rules as WindowsInstance.spec.username.
	usernameRe = regexp.MustCompile(`^[^\s"/\[\]:;|=,+*?<>]+$`)
	// Same rule as WindowsInstance.spec.nodeName: a lower-case RFC 1123
	// subdomain such as ip-10-0-1-2.ec2.internal.
	nodeNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hostKeyRe  = regexp.MustCompile(`^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,2}$`)
)

// The longest username, nodeName and hostKey, as WindowsInstance.spec
// allows.
const (
	maxUsername = 256
	maxNodeName = 253
	maxHostKey  = 8192
)

// Parse reads the ConfigMap's data. Entries come back sorted by address;
// problems sorted by key. Hosts listed more than once (under keys that
// normalise alike) are all rejected: the inventory is ambiguous.
func Parse(data map[string]string) ([]Entry, []Problem) {
	var entries []Entry
	var problems []Problem
	byAddr := map[string][]string{}
	for key, value := range data {
		addr, err := hostaddr.Normalize(key)
		var forbidden *hostaddr.ForbiddenError
		if errors.As(err, &forbidden) {
			// The key names a host, one the operator never connects to: an
			// instance of it from before is kept, as for any invalid entry.
			problems = append(problems, Problem{Key: key, Address: forbidden.Addr, Reason: err.Error()})
			continue
		}
		if err != nil {
			problems = append(problems, Problem{Key: key, Reason: err.Error()})
			continue
		}
		byAddr[addr] = append(byAddr[addr], key)
		e, err := parseValue(key, addr, value)
		if err != nil {
			problems = append(problems, Problem{Key: key, Address: addr, Reason: err.Error()})
			continue
		}
		entries = append(entries, e)
	}
	dup := map[string]bool{}
	for addr, keys := range byAddr {
		if len(keys) < 2 {
			continue
		}
		sort.Strings(keys)
		dup[addr] = true
		for _, k := range keys {
			problems = append(problems, Problem{Key: k, Address: addr,
				Reason: fmt.Sprintf("host %s is listed more than once (keys %s)", addr, strings.Join(keys, ", "))})
		}
	}
	kept := entries[:0]
	for _, e := range entries {
		if !dup[e.Address] {
			kept = append(kept, e)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Address < kept[j].Address })
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	return kept, problems
}

func parseValue(key, addr, value string) (Entry, error) {
	e := Entry{Key: key, Address: addr}
	seen := map[string]bool{}
	for _, line := range strings.Split(value, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return e, fmt.Errorf("line %s is not key=value", bounded.Quote(line))
		}
		if seen[k] {
			return e, fmt.Errorf("%s is given more than once", k)
		}
		seen[k] = true
		switch k {
		case "username":
			if v == "" {
				return e, fmt.Errorf("username is empty")
			}
			if len(v) > maxUsername {
				return e, fmt.Errorf("username %s is longer than %d characters", bounded.Quote(v), maxUsername)
			}
			if !usernameRe.MatchString(v) {
				return e, fmt.Errorf("username %s has spaces or any of \" / [ ] : ; | = , + * ? < >", bounded.Quote(v))
			}
			e.Username = v
		case "port":
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return e, fmt.Errorf("port %s is not a number from 1 to 65535", bounded.Quote(v))
			}
			e.Port = int32(p)
		case "nodeName":
			if len(v) > maxNodeName || !nodeNameRe.MatchString(v) {
				return e, fmt.Errorf("nodeName %s is not a lower-case RFC 1123 subdomain such as ip-10-0-1-2.ec2.internal", bounded.Quote(v))
			}
			e.NodeName = v
		case "hostKey":
			if len(v) > maxHostKey {
				return e, fmt.Errorf("hostKey is %d characters long; at most %d", len(v), maxHostKey)
			}
			if !hostKeyRe.MatchString(v) {
				return e, fmt.Errorf("hostKey is not '<type> <base64>' with type ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp256/384/521")
			}
			e.HostKey = v
		default:
			return e, fmt.Errorf("unknown key %s (known: username, port, nodeName, hostKey)", bounded.Quote(k))
		}
	}
	if e.Username == "" {
		return e, fmt.Errorf("username is missing (want username=<user>)")
	}
	return e, nil
}

// maxInstanceName is the longest WindowsInstance name: names are label
// values on Nodes and bootstrap tokens.
const maxInstanceName = 63

// InstanceName is the WindowsInstance name for an inventory address: the
// address itself, with ':' of IPv6 turned into '-'; an address longer than
// a label value is cut and suffixed with a hash of the whole, so distinct
// addresses keep distinct names.
func InstanceName(addr string) string {
	name := strings.ReplaceAll(addr, ":", "-")
	if len(name) <= maxInstanceName {
		return name
	}
	sum := sha256.Sum256([]byte(addr))
	suffix := "-" + hex.EncodeToString(sum[:])[:10]
	head := strings.TrimRight(name[:maxInstanceName-len(suffix)], ".-")
	return head + suffix
}
