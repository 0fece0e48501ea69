package wicd

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// nameSystem is a System that keeps a computer name and a pending one as
// Windows does: a name set takes effect at the next boot only.
type nameSystem struct {
	active, pending string
	sets            []string
	setErr          error
	// ignoreSet makes SetHostname report success and change nothing.
	ignoreSet bool
}

func (s *nameSystem) Hostname() (string, error)                  { return s.active, nil }
func (s *nameSystem) OSBuild() (int, error)                      { return wicdapi.OSBuildServer2022, nil }
func (s *nameSystem) Addresses() ([]string, error)               { return nil, nil }
func (s *nameSystem) Now() time.Time                             { return time.Now() }
func (s *nameSystem) BootTime() (time.Time, error)               { return time.Time{}, nil }
func (s *nameSystem) Features([]string) (map[string]bool, error) { return nil, nil }
func (s *nameSystem) EnableFeature(string) (bool, error)         { return false, nil }
func (s *nameSystem) PendingHostname() (string, error)           { return s.pending, nil }

func (s *nameSystem) SetHostname(name string) error {
	s.sets = append(s.sets, name)
	if s.setErr != nil || s.ignoreSet {
		return s.setErr
	}
	if strings.EqualFold(name, s.active) {
		s.pending = ""
	} else {
		s.pending = name
	}
	return nil
}

func TestSetHostname(t *testing.T) {
	cases := []struct {
		name            string
		sys             nameSystem
		want            string
		result          wicdapi.SetHostnameResult
		sets            []string
		code            wicdapi.ErrorCode
		activeAfterBoot string
	}{
		{"in effect", nameSystem{active: "vm-abc12"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "vm-abc12"}, nil, "", "vm-abc12"},
		{"in effect, other case", nameSystem{active: "VM-ABC12"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "VM-ABC12"}, nil, "", "VM-ABC12"},
		{"pending already", nameSystem{active: "WIN-X", pending: "VM-ABC12"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "VM-ABC12", RebootRequired: true}, nil, "", "VM-ABC12"},
		{"set", nameSystem{active: "WIN-X"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "vm-abc12", Changed: true, RebootRequired: true}, []string{"vm-abc12"}, "", "vm-abc12"},
		{"another name pending is replaced", nameSystem{active: "WIN-X", pending: "other"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "vm-abc12", Changed: true, RebootRequired: true}, []string{"vm-abc12"}, "", "vm-abc12"},
		{"a pending rename of the name in effect is cancelled", nameSystem{active: "vm-abc12", pending: "other"}, "vm-abc12",
			wicdapi.SetHostnameResult{Hostname: "vm-abc12", Changed: true}, []string{"vm-abc12"}, "", "vm-abc12"},
		{"upper case refused", nameSystem{active: "WIN-X"}, "VM-ABC12", wicdapi.SetHostnameResult{}, nil, wicdapi.CodeUsage, "WIN-X"},
		{"too long", nameSystem{active: "WIN-X"}, "vm-abcdefghijk12", wicdapi.SetHostnameResult{}, nil, wicdapi.CodeUsage, "WIN-X"},
		{"fifteen characters", nameSystem{active: "WIN-X"}, "vm-abcdefghij12",
			wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "vm-abcdefghij12", Changed: true, RebootRequired: true}, []string{"vm-abcdefghij12"}, "", "vm-abcdefghij12"},
		{"dot refused", nameSystem{active: "WIN-X"}, "vm.abc", wicdapi.SetHostnameResult{}, nil, wicdapi.CodeUsage, "WIN-X"},
		{"leading hyphen refused", nameSystem{active: "WIN-X"}, "-vm", wicdapi.SetHostnameResult{}, nil, wicdapi.CodeUsage, "WIN-X"},
		{"empty refused", nameSystem{active: "WIN-X"}, "", wicdapi.SetHostnameResult{}, nil, wicdapi.CodeUsage, "WIN-X"},
		{"Windows refuses", nameSystem{active: "WIN-X", setErr: errors.New("access is denied")}, "vm-abc12",
			wicdapi.SetHostnameResult{}, []string{"vm-abc12"}, wicdapi.CodeInternal, "WIN-X"},
		{"a set that does not stick is an error", nameSystem{active: "WIN-X", ignoreSet: true}, "vm-abc12",
			wicdapi.SetHostnameResult{}, []string{"vm-abc12"}, wicdapi.CodeInternal, "WIN-X"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			sys := tc.sys
			res, err := SetHostname(&Backend{System: &sys}, tc.want)
			g.Expect(sys.sets).To(Equal(tc.sets))
			if tc.code != "" {
				var we *wicdapi.Error
				g.Expect(errors.As(err, &we)).To(BeTrue(), "error %v", err)
				g.Expect(we.Code).To(Equal(tc.code))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(*res).To(Equal(tc.result))
			}
			// What the next boot brings.
			after := sys.active
			if sys.pending != "" {
				after = sys.pending
			}
			g.Expect(after).To(Equal(tc.activeAfterBoot))
		})
	}
}

func FuzzValidHostname(f *testing.F) {
	for _, s := range []string{"vm-abc12", "WIN-X", "", "a", "-a", "a-", "a.b", "vm-abcdefghijk12", "ünïcode"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validHostname(name) != nil {
			return
		}
		// An accepted name is safe on a command line and as a Node name.
		if len(name) == 0 || len(name) > wicdapi.MaxHostnameLength || strings.ToLower(name) != name ||
			strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.ContainsAny(name, " .\"'\\/=") {
			t.Fatalf("accepted %q", name)
		}
	})
}
