package preflight

import (
	"bytes"
	"errors"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/hostaddr"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func TestParentDir(t *testing.T) {
	for in, want := range map[string]string{
		`C:\Windows\Temp\wmco-preflight-1`: `C:\Windows\Temp`,
		`C:\Windows`:                       `C:\`,
		`D:\a\b`:                           `D:\a`,
	} {
		NewWithT(t).Expect(parentDir(in)).To(Equal(want), in)
	}
}

func TestConnectChecks(t *testing.T) {
	target := remote.Target{Address: "10.0.0.5", Username: "Administrator"}
	cases := []struct {
		name  string
		err   error
		fails string
		fix   string
	}{
		{"unreachable", &remote.UnreachableError{Address: "10.0.0.5:22", Err: errors.New("connection refused")}, CheckReachable, "TCP 22"},
		{"refused key", &remote.AuthError{Address: "10.0.0.5:22", User: "Administrator", Reason: "no key accepted"}, CheckAuthentication, `C:\Users\Administrator\.ssh\authorized_keys`},
		{"unusable key", &remote.AuthError{Address: "10.0.0.5:22", User: "Administrator", Cause: remote.AuthKeyUnusable, Reason: "private key is passphrase-protected"}, CheckAuthentication, "unencrypted"},
		{"no public key auth", &remote.AuthError{Address: "10.0.0.5:22", User: "Administrator", Cause: remote.AuthPublicKeyNotOffered, Reason: "host does not offer public key authentication (offers password)"}, CheckAuthentication, "PubkeyAuthentication yes"},
		{"other host key", &remote.HostKeyMismatchError{Address: "10.0.0.5:22", Expected: "SHA256:a", Actual: "SHA256:b"}, CheckHostKey, "--host-key"},
		{"forbidden address", &remote.ForbiddenAddressError{Address: "169.254.169.254:22",
			Err: &hostaddr.ForbiddenError{Addr: "169.254.169.254", Reason: "link-local addresses are never dialled"}}, CheckReachable, "link-local"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			checks := connectChecks(target, tc.err)
			g.Expect(checks).To(HaveLen(3))
			failed := 0
			for _, c := range checks {
				if c.Status == Failed {
					failed++
					g.Expect(c.Name).To(Equal(tc.fails))
					g.Expect(c.Fix).To(ContainSubstring(tc.fix))
				}
			}
			g.Expect(failed).To(Equal(1))
		})
	}
}

func TestAgentFailure(t *testing.T) {
	g := NewWithT(t)
	checks := agentFailure(&remote.DiskFullError{Path: `C:\Windows\Temp\x\wicd.exe`, Free: 0, Needed: 32})
	g.Expect(checks[0]).To(Equal(Check{Name: wicdapi.CheckDiskSpace, Status: Failed,
		Message: "no room on C: even for the agent (0 bytes free, 32 more needed)", Fix: fixes[wicdapi.ReasonLowDisk]}))
	g.Expect(checks).To(HaveLen(len(hostChecks)), "every other host check skipped once")

	checks = agentFailure(&wicdapi.Error{Code: wicdapi.CodeInternal, Message: "read OS build: denied"})
	g.Expect(checks[0].Name).To(Equal(CheckAgent))
	g.Expect(checks[0].Message).To(ContainSubstring("read OS build: denied"))
	g.Expect(checks).To(HaveLen(1 + len(hostChecks)))
}

func TestResultTableAndPassed(t *testing.T) {
	g := NewWithT(t)
	r := &Result{Checks: []Check{
		{Name: CheckReachable, Status: Passed, Message: "SSH on a@b:22"},
		{Name: wicdapi.CheckDiskSpace, Status: Failed, Message: "free space\non C: is low", Fix: "free space"},
	}}
	var b bytes.Buffer
	g.Expect(r.WriteTable(&b)).To(Succeed())
	g.Expect(b.String()).To(Equal("CHECK      RESULT                         FIX\n" +
		"Reachable  PASS: SSH on a@b:22            -\n" +
		"DiskSpace  FAIL: free space on C: is low  free space\n"))
	g.Expect(r.Passed()).To(BeFalse())
	r.Checks = r.Checks[:1]
	g.Expect(r.Passed()).To(BeTrue())
	r.CleanupError = errors.New("left C:\\Windows\\Temp\\x")
	g.Expect(r.Passed()).To(BeFalse(), "a host left unclean is a failure")

	for reason := range map[string]bool{wicdapi.ReasonUnsupported: true, wicdapi.ReasonBadHostname: true, wicdapi.ReasonLowDisk: true,
		wicdapi.ReasonNoFeature: true, wicdapi.ReasonForeign: true,
		wicdapi.ReasonForeignKubelet: true, wicdapi.ReasonForeignKubeProxy: true, wicdapi.ReasonClockSkew: true, wicdapi.ReasonNoFirewall: true} {
		g.Expect(fixes).To(HaveKey(reason), "every failure reason of the agent has a fix")
	}
}
