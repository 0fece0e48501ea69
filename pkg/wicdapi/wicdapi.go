// Package wicdapi is the contract between the operator and its node agent,
// wicd: the Plan the operator renders and uploads, and the JSON each wicd
// subcommand prints on stdout. It has no dependencies beyond the standard
// library so that the agent stays small.
//
// Compatibility: fields are only ever added. A Plan carries SchemaVersion
// so an agent can refuse a plan newer than it understands.
package wicdapi

import (
	"crypto/sha1" //nolint:gosec // Windows names certificates by their SHA-1 thumbprint.
	"encoding/hex"
	"strings"
	"time"
)

// Fixed locations on the host. The operator never passes variable data on a
// command line: it uploads files to these places and runs the agent with
// fixed arguments.
const (
	// InstallRoot holds everything the operator puts on a host.
	InstallRoot = `C:\k`
	// AgentPath is where the agent binary lives.
	AgentPath = `C:\k\wicd.exe`
	// PlanPath is where the operator uploads the Plan to apply.
	PlanPath = `C:\k\plan.json`
	// AppliedPlanPath is where the agent keeps the last plan it applied:
	// apply saves it before changing anything, so after a failed apply it
	// is the failed plan (Facts.ApplyError says so; `wicd rollback`
	// replaces it). `wicd run` re-applies it and `wicd cleanup` undoes it.
	AppliedPlanPath = `C:\k\applied-plan.json`
	// PayloadRoot holds one directory per payload version.
	PayloadRoot = `C:\k\payload`
	// KubeletPKIDir is where the kubelet keeps its certificates and its
	// client key; the agent lets only SYSTEM and Administrators open it.
	KubeletPKIDir = `C:\var\lib\kubelet\pki`
	// LogDir held the services' logs before they moved to
	// ServiceLogRoot; facts still leaves it out.
	LogDir = `C:\k\log`
	// ServiceLogRoot holds a folder of logs per service,
	// ServiceLogRoot\<service>\<service>.log: where the kubelet's node
	// log query looks on Windows.
	ServiceLogRoot = `C:\var\log`
	// AgentServiceName is the Windows service that runs `wicd run`.
	AgentServiceName = "windows-instance-config-daemon"
	// AgentStagingPath is where the operator uploads a new agent before
	// running it with `self-upgrade` (see the upgrade protocol below).
	AgentStagingPath = `C:\k\wicd.new.exe`
	// AgentPreviousPath keeps the agent that the last self-upgrade
	// replaced, for rollback.
	AgentPreviousPath = `C:\k\wicd.prev.exe`
	// AgentLogDir holds the agent's own log, AgentLogPath, and its
	// rotated predecessors (wicd.log.1 is the newest).
	AgentLogDir = `C:\var\log\wicd`
	// AgentLogPath is the agent's log file.
	AgentLogPath = AgentLogDir + `\wicd.log`
	// AuthorizedKeysChangePath is where the operator uploads the
	// AuthorizedKeysChange that `wicd authorized-keys` makes.
	AuthorizedKeysChangePath = `C:\k\authorized-keys.json`
	// AdministratorsAuthorizedKeysPath is where OpenSSH for Windows reads
	// the public keys of every member of Administrators; a user who is
	// not one has C:\Users\<user>\.ssh\authorized_keys.
	AdministratorsAuthorizedKeysPath = `C:\ProgramData\ssh\administrators_authorized_keys`
	// AppliedPlanPreviousPath keeps the applied plan that the last apply
	// of another payload version replaced; `wicd rollback` applies it.
	AppliedPlanPreviousPath = `C:\k\applied-plan.prev.json`
	// StagePlanPath is where the operator uploads the StagePlan that
	// `wicd stage` carries out.
	StagePlanPath = `C:\k\stage.json`
	// ApplyErrorPath holds the Error of the last apply, rollback or `wicd
	// run` re-apply that failed, or CodeInterrupted while an apply of a
	// new plan has not finished; a successful one removes it (Facts
	// ApplyError).
	ApplyErrorPath = `C:\k\apply-error.json`
	// ApplyLeftoversPath holds the services and firewall rules of the
	// plans replaced since the last apply that finished, which the plan
	// being applied may no longer have: an apply cut short before it
	// removed them leaves them for the next apply (or cleanup) to
	// remove. It also names the services whose configuration or files
	// an apply changed while they ran: one that failed or was cut short
	// before restarting them leaves them for the next apply to restart.
	// A finished apply removes the file.
	ApplyLeftoversPath = `C:\k\apply-leftovers.json`
	// TrustedRootsRecordPath is where the agent records the thumbprints
	// of the certificates it imported into the LocalMachine Root store
	// (Plan.TrustedRootCertificates), so that it removes those, and only
	// those, once no plan lists them.
	TrustedRootsRecordPath = `C:\k\trusted-roots.json`
)

// Payload versions on a host: the rolling upgrade protocol.
//
// Each payload version lives in its own folder, PayloadRoot\<version>
// (the Plan's PayloadVersion); a plan's services run from its folder. To
// move a host from the applied version to a new one, the operator:
//
//  1. reads Facts: AppliedPayloadVersion, PayloadVersions and the sha256
//     of every file under InstallRoot (Files);
//  2. uploads a StagePlan to StagePlanPath and runs exactly
//     []string{AgentPath, StageArg, "--plan", StagePlanPath} with a deadline
//     of StageTimeout(plan): the agent copies, on the host, every new
//     file whose bytes some file already on the host has (usually the
//     same file of the applied version), so that only changed files
//     travel over the wire;
//  3. uploads the remaining files into the new folder (SFTP, sha256
//     verified, renamed into place);
//  4. uploads the new Plan and runs `apply` (see the repoint rule below);
//  5. once the node is Ready on the new version, runs
//     []string{AgentPath, PruneArg} with a deadline of PruneTimeout to
//     remove the folders no plan needs any more. Never between 2 and 4:
//     prune keeps only the applied and the previous plan's folders.
//
// When the new version does not come up, the operator runs
// []string{AgentPath, RollbackArg} with a deadline of ApplyTimeout of the
// failed plan: the agent applies the previous plan (AppliedPlanPreviousPath)
// exactly as apply would, which points the services back at the previous
// folder and restarts those whose files differ. The failed plan becomes
// the previous one, so its folder stays until pruned. Apply saves its
// plan as the applied one before it changes anything, so a failed apply
// is the applied plan (and `wicd run` keeps retrying it) until rollback:
// roll back before applying yet another version, or the failed plan
// becomes the previous one.
//
// The repoint rule of apply: a running service whose installed
// configuration differs from the plan's only by the payload folder (every
// occurrence of `PayloadRoot\<old>\` in its binary path and arguments,
// compared case-insensitively, replaced by `PayloadRoot\<new>\`), and for
// which every payload path its binary path and arguments name is the same
// in both folders (a file with the same sha256, or a folder with the same
// files and hashes), is repointed: its configuration is updated without a
// restart (Windows uses the new binary path at the next start), and the
// change is reported with Action ActionRepointed. A payload path is the
// text from `PayloadRoot\<version>\` up to the end of the argument or the
// first character that cannot be in a payload path (anything but
// letters, digits and `._+~-\/`). Any other difference, a referenced path
// that differs or is missing, or a changed plan file the service names,
// restarts the service and its dependents as before. So a plan file whose
// content names the payload folder (a configuration file pointing at the
// version's programs) changes with every version and restarts the
// services that name it, and their dependents.
const (
	// StageArg is the subcommand that copies payload files on the host.
	StageArg = "stage"
	// RollbackArg is the subcommand that applies the previous plan.
	RollbackArg = "rollback"
	// PruneArg is the subcommand that removes unneeded payload folders.
	PruneArg = "prune"
	// PruneTimeout bounds `wicd prune`: the host lock and the removals.
	PruneTimeout = 2 * DefaultStepTimeout
)

// ActionRepointed is the Change.Action of a service that apply pointed at
// another payload folder without restarting it (see the repoint rule).
const ActionRepointed = "repointed"

// StagePlan is what `wicd stage` reads from StagePlanPath.
type StagePlan struct {
	// Copies to make, in order.
	Copies []StageCopy `json:"copies"`
}

// StageCopy copies a file already on the host into a payload folder. The
// agent skips it when To already has SHA256; otherwise it checks that From
// has SHA256 (CodeFileMismatch if not, CodeNotFound if From is missing),
// writes a temporary file beside To, verifies it and renames it over To,
// creating To's folders. From and To must be files under PayloadRoot
// (CodeInvalidPlan otherwise); From may also be AgentPath, whose bytes
// are those of the payload's wicd.exe once the agent is current (an agent
// before this rule refuses such a copy with CodeInvalidPlan).
type StageCopy struct {
	// From is an existing file, e.g. the same file in the applied
	// version's folder.
	From string `json:"from"`
	// To is the file in the new version's folder.
	To string `json:"to"`
	// SHA256 (lower-case hex) both must have.
	SHA256 string `json:"sha256"`
}

// StageResult is what `wicd stage` prints.
type StageResult struct {
	// Copied counts the files copied, Bytes their total size.
	Copied int   `json:"copied"`
	Bytes  int64 `json:"bytes"`
	// Present counts the copies skipped because To already had SHA256.
	Present int `json:"present"`
}

// StageTimeout is the deadline of `wicd stage` for a plan: one step for
// the host lock and one for every 16 copies begun.
func StageTimeout(p *StagePlan) time.Duration {
	n := 0
	if p != nil {
		n = len(p.Copies)
	}
	return time.Duration(2+n/16) * DefaultStepTimeout
}

// PruneResult is what `wicd prune` prints. Prune removes every folder
// under PayloadRoot except those of the applied and the previous plan's
// PayloadVersion; with no applied plan it removes nothing. Files a process
// holds (a service repointed without restart still runs its old binary)
// stay and are listed in Kept, with the folders above them; prune run
// again later removes them.
type PruneResult struct {
	// Removed lists the payload versions whose folders are gone.
	Removed []string `json:"removed"`
	// Kept lists the files left because processes held them.
	Kept []HeldFile `json:"kept,omitempty"`
}

// SSH key rotation. The operator changes the keys a host accepts for the
// account it logs in as by uploading an AuthorizedKeysChange to
// AuthorizedKeysChangePath and running exactly
// []string{AgentPath, AuthorizedKeysArg, "--change", AuthorizedKeysChangePath}
// over a session of that account; the agent prints AuthorizedKeysResult.
// The agent edits the file sshd reads for its own account (the
// administrators' file for a member of Administrators), keeps every line it
// was not asked to remove, writes it aside and renames it into place, and
// gives the administrators' file the security descriptor sshd requires
// (owner Administrators, full control for SYSTEM and Administrators only,
// nothing inherited). Running it again changes nothing.
const (
	// AuthorizedKeysArg is the subcommand that edits authorized keys.
	AuthorizedKeysArg = "authorized-keys"
)

// AuthorizedKeysChange is the file `wicd authorized-keys` applies. Keys
// are OpenSSH public key lines ("ssh-ed25519 AAAA... comment").
type AuthorizedKeysChange struct {
	// Add lists keys to authorize; a key the file has already stays as
	// it is.
	Add []string `json:"add,omitempty"`
	// Remove lists keys to revoke: every line holding one of them goes.
	Remove []string `json:"remove,omitempty"`
}

// AuthorizedKeysResult is what `wicd authorized-keys` prints.
type AuthorizedKeysResult struct {
	// File is the authorized keys file edited.
	File string `json:"file"`
	// Added and Removed are the SHA256 fingerprints ("SHA256:...") of the
	// keys added and removed by this run.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Changed is false when the file already was as asked.
	Changed bool `json:"changed"`
}

// The agent upgrade protocol. Windows refuses to replace or delete the
// executable of a running process ("Access is denied"), so the operator
// never uploads over AgentPath while the agent service may run it. On a
// host where AgentPath does not exist, nothing can run it: the operator
// uploads the agent there directly (the upload verified with the host's
// certutil, as there is no agent to hash it yet). To put a new agent on a
// host that has one, the operator:
//
//  1. uploads the new binary to AgentStagingPath (SFTP to a temporary name,
//     sha256 verified, renamed into place, as every upload);
//  2. runs exactly []string{AgentStagingPath, "self-upgrade"} with a
//     deadline of SelfUpgradeTimeout and decodes SelfUpgradeResult from
//     stdout (or ErrorOutput, exit status 1).
//
// Running from the staging file, the new agent takes the host lock, stops
// the AgentServiceName service if it runs, copies the current AgentPath to
// AgentPreviousPath, writes itself over AgentPath once the old process has
// let go of it (waiting at most one step deadline; CodeFileInUse names the
// holder otherwise), starts the service again if it was running or starts
// at boot (an upgrade killed after the stop left it stopped), and checks
// that `AgentPath version` answers with its own version. If starting or
// checking fails, or the deadline ends first, it puts the previous binary
// back, restarts the service and fails with CodeUpgradeFailed. A host
// without the agent or its service is handled alike (nothing to stop or
// restart). Running it again once the upgrade is done changes nothing
// (Changed false) but for starting the service if it was left stopped
// (ServiceRestarted). The staging file stays
// (a running image cannot delete itself); the next upload replaces it and
// `cleanup` removes it.
const (
	// SelfUpgradeArg is the subcommand of the upgrade protocol.
	SelfUpgradeArg = "self-upgrade"
	// SelfUpgradeTimeout bounds `self-upgrade`: stop, replace, start and
	// check, each within DefaultStepTimeout.
	SelfUpgradeTimeout = 4*DefaultStepTimeout + 30*time.Second
)

// SelfUpgradeResult is what `wicd self-upgrade` prints.
type SelfUpgradeResult struct {
	// Changed is false when AgentPath already was this agent.
	Changed bool `json:"changed"`
	// From is the version the replaced agent reported ("" if it did not
	// answer or there was none); To is the new agent's version.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// ServiceRestarted is true when the agent service was stopped for the
	// replacement (by this run or by one cut short) and runs the new
	// agent now.
	ServiceRestarted bool `json:"serviceRestarted,omitempty"`
	// Waited lists files the old agent still held after its service
	// stopped, which the upgrade waited for.
	Waited []HeldFile `json:"waited,omitempty"`
}

// HeldFile is a file that processes held open when the agent wanted to
// replace or delete it.
type HeldFile struct {
	Path string `json:"path"`
	// Holders name the processes ("kubelet.exe (PID 4312)") as far as the
	// host can tell; empty when it cannot.
	Holders []string `json:"holders,omitempty"`
}

// DefaultStepTimeout bounds one step of a command on the host (starting
// or stopping one service, writing the files, waiting for a file to be
// released) when the plan sets no StepTimeoutSeconds. A command's own
// deadline is the sum of its steps' (see ApplyTimeout).
const DefaultStepTimeout = 2 * time.Minute

// EnableFeaturesTimeout bounds `wicd enable-features` (DISM can take
// minutes to enable Containers).
const EnableFeaturesTimeout = 20 * time.Minute

// FeatureContainers is the Windows feature a node needs; facts report
// whether it is enabled.
const FeatureContainers = "Containers"

// Windows Server builds the operator supports.
const (
	OSBuildServer2019 = 17763
	OSBuildServer2022 = 20348
	OSBuildServer2025 = 26100
)

// SupportedOSBuilds names each supported build.
var SupportedOSBuilds = map[int]string{
	OSBuildServer2019: "Windows Server 2019",
	OSBuildServer2022: "Windows Server 2022",
	OSBuildServer2025: "Windows Server 2025",
}

// SchemaVersion is the Plan format this package describes.
const SchemaVersion = 1

// Plan is the desired state of one host. Applying it twice changes nothing
// the second time.
type Plan struct {
	// SchemaVersion of this plan (SchemaVersion).
	SchemaVersion int `json:"schemaVersion"`
	// PayloadVersion the plan's services run from.
	PayloadVersion string `json:"payloadVersion"`
	// NodeName the kubelet registers as.
	NodeName string `json:"nodeName"`
	// Directories to create before writing files.
	Directories []string `json:"directories,omitempty"`
	// Files to write (configuration, kubeconfigs, CNI config).
	Files []File `json:"files,omitempty"`
	// Copies are payload files the agent copies to a fixed place outside
	// the versioned payload directories, after Files.
	Copies []Copy `json:"copies,omitempty"`
	// Services to install, in any order: the agent orders them by their
	// dependencies.
	Services []Service `json:"services,omitempty"`
	// Networks are HNS networks the plan's services create; cleanup
	// removes them after all but the plans, because removing one can
	// reset the host's network connections (see
	// CleanupResult.Reconnect).
	Networks []string `json:"networks,omitempty"`
	// HostNetworks are HNS networks the agent creates itself, when
	// missing, after the files and before starting services; Networks
	// lists them too, so cleanup removes them.
	HostNetworks []HostNetwork `json:"hostNetworks,omitempty"`
	// FirewallRules are inbound rules the agent keeps in the Windows
	// Firewall.
	FirewallRules []FirewallRule `json:"firewallRules,omitempty"`
	// DefenderExclusions are folders Microsoft Defender must not scan
	// (containerd's root and state), added where Defender is installed.
	DefenderExclusions []string `json:"defenderExclusions,omitempty"`
	// StepTimeoutSeconds bounds each step of applying or cleaning up the
	// plan; zero means DefaultStepTimeout.
	StepTimeoutSeconds int `json:"stepTimeoutSeconds,omitempty"`
	// TrustedRootCertificates are CA certificates (one PEM CERTIFICATE
	// each) the host trusts: apply imports each into the LocalMachine Root
	// store unless it is there already, and removes those it imported
	// before that the plan no longer lists (it keeps a record at
	// TrustedRootsRecordPath; a certificate it did not import is never
	// removed). Cleanup removes every certificate it imported. No service
	// restarts for a change: Windows reads the store at each verification.
	// Changes name a certificate by its thumbprint (Kind
	// ChangeKindCertificate).
	TrustedRootCertificates []string `json:"trustedRootCertificates,omitempty"`
	// LogRetention bounds the services' rotated logs; nil: the agent
	// removes no log.
	LogRetention *LogRetention `json:"logRetention,omitempty"`
}

// LogRetention is what the agent's `wicd run` loop removes from the log
// folders, at each pass: in the folder of each of Logs, every file other
// than that log itself that is older than MaxAgeDays (by modification
// time), and beyond the MaxFiles newest of the rest. The log a service
// writes is never removed, nor a file a process holds open (tried again
// at the next pass), nor a folder. Logs must be files directly in a
// folder under ServiceLogRoot (the agent refuses the plan otherwise):
// each service's folder holds only its own log and its rotated files.
type LogRetention struct {
	// MaxFiles is how many rotated files each folder keeps besides the
	// current log; at least 1.
	MaxFiles int `json:"maxFiles"`
	// MaxAgeDays removes rotated files older than this; at least 1.
	MaxAgeDays int `json:"maxAgeDays"`
	// Logs are the files the services write, e.g.
	// C:\var\log\kubelet\kubelet.log.
	Logs []string `json:"logs"`
	// CopyTruncate are those of Logs whose programs write them
	// themselves and rotate nothing (containerd, windows_exporter).
	// Once one has reached MaxFileSizeMiB, the pass copies it beside
	// itself as a rotated file (RotatedLogName) and empties it: the
	// programs hold their log open for appending, so Windows lets it be
	// neither renamed nor deleted, and their next line lands at its new
	// start. What they write while it is copied is lost.
	CopyTruncate []string `json:"copyTruncate,omitempty"`
	// MaxFileSizeMiB is the size at which CopyTruncate logs are rotated;
	// at least 1 when CopyTruncate lists any.
	MaxFileSizeMiB int `json:"maxFileSizeMiB,omitempty"`
}

// RotatedLogName is the name the agent gives the copy of the log current
// it rotates at t: beside it, the time (UTC, to the millisecond) before
// its extension, e.g. C:\var\log\containerd\containerd-20261205T114501.123Z.log.
func RotatedLogName(current string, t time.Time) string {
	stamp := "-" + t.UTC().Format("20060102T150405.000Z")
	dot := strings.LastIndex(current, ".")
	if dot <= strings.LastIndex(current, `\`) {
		return current + stamp
	}
	return current[:dot] + stamp + current[dot:]
}

// ChangeKindCertificate is the Change.Kind of a certificate apply imported
// into or removed from the LocalMachine Root store; Change.Name is its
// thumbprint (the SHA-1 of its DER, upper-case hex, as Windows shows it).
const ChangeKindCertificate = "certificate"

// Thumbprint is a certificate's thumbprint as Windows shows it: the SHA-1
// of its DER encoding, upper-case hex.
func Thumbprint(der []byte) string {
	sum := sha1.Sum(der) //nolint:gosec // an identifier, not a security check
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// TrustedRootsRecord is what the agent keeps at TrustedRootsRecordPath.
type TrustedRootsRecord struct {
	// Thumbprints of the certificates the agent imported, sorted.
	Thumbprints []string `json:"thumbprints"`
}

// StepTimeout is the deadline of one step of applying the plan.
func (p *Plan) StepTimeout() time.Duration {
	if p == nil || p.StepTimeoutSeconds <= 0 {
		return DefaultStepTimeout
	}
	return time.Duration(p.StepTimeoutSeconds) * time.Second
}

// ApplyTimeout is the deadline the operator gives `wicd apply` and `wicd
// cleanup` for a plan: one step deadline for the files and the host lock,
// two per service (stop and start), one per firewall rule and Defender
// exclusion, one per network and per network it creates, and one for
// files still held by processes.
func ApplyTimeout(p *Plan) time.Duration {
	steps := 3 + 2*len(p.Services) + len(p.FirewallRules) + len(p.DefenderExclusions) + len(p.Networks) + len(p.HostNetworks)
	return time.Duration(steps) * p.StepTimeout()
}

// Firewall rules the operator's plans ask for; preflight reports them.
const (
	FirewallRuleKubelet         = "wmco-kubelet-10250"
	FirewallRuleWindowsExporter = "wmco-windows-exporter-9182"
	KubeletPort                 = 10250
	WindowsExporterPort         = 9182
)

// FirewallRule is one inbound allow rule for a local TCP or UDP port.
type FirewallRule struct {
	// Name of the rule as the firewall shows it; the agent owns rules by
	// name.
	Name string `json:"name"`
	// Protocol is "TCP" or "UDP".
	Protocol string `json:"protocol"`
	// Port is the local port.
	Port int `json:"port"`
	// Description says why the port is open.
	Description string `json:"description,omitempty"`
}

// File is a file the agent writes. Content is base64 in JSON.
type File struct {
	// Path is an absolute Windows path under InstallRoot or another
	// directory the plan owns.
	Path string `json:"path"`
	// Content of the file.
	Content []byte `json:"content"`
	// Sensitive marks credentials (kubeconfigs with tokens): the agent
	// never prints their content.
	Sensitive bool `json:"sensitive,omitempty"`
}

// Copy places a payload file at a fixed path outside the versioned payload
// directories: a program that runs detached from the services, such as
// containerd's runhcs shim (one process per pod, surviving containerd and
// payload upgrades), must not pin a payload version's directory. While
// processes run the old copy, the agent renames it aside (Windows allows
// renaming a running image, not replacing it) and removes the renamed
// copies once they are free.
type Copy struct {
	// From is a file in the payload.
	From string `json:"from"`
	// To is where the copy lives.
	To string `json:"to"`
}

// StartType of a Windows service.
type StartType string

const (
	// StartAutomatic services start at boot.
	StartAutomatic StartType = "automatic"
	// StartManual services start only when asked.
	StartManual StartType = "manual"
)

// Service is a Windows service the agent installs and keeps running.
type Service struct {
	// Name is the service's key name, e.g. "kubelet".
	Name string `json:"name"`
	// DisplayName shown by the service manager.
	DisplayName string `json:"displayName,omitempty"`
	// Description shown by the service manager.
	Description string `json:"description,omitempty"`
	// Binary is the absolute path of the executable.
	Binary string `json:"binary"`
	// Args are passed to the executable, each one argument.
	Args []string `json:"args,omitempty"`
	// Dependencies are services that must run before this one.
	Dependencies []string `json:"dependencies,omitempty"`
	// Env sets environment variables of the service (on Windows the
	// Environment value of the service's registry key). A change restarts
	// the service and its dependents.
	Env map[string]string `json:"env,omitempty"`
	// SensitiveEnv marks Env values as credentials (a proxy URL with
	// user:password): the agent never prints them, in output, errors or
	// logs, and restricts the service's registry key, which holds them, to
	// LocalSystem and Administrators (every user may read a service's key
	// otherwise).
	SensitiveEnv bool `json:"sensitiveEnv,omitempty"`
	// StartType is automatic unless set.
	StartType StartType `json:"startType,omitempty"`
	// Recovery is what the service manager does when the service fails.
	Recovery Recovery `json:"recovery"`
	// RequiresNetworks are HNS networks that must exist before the agent
	// starts the service (kube-proxy needs the network flanneld creates):
	// the agent waits up to one step deadline for them and fails the
	// start naming the missing one. Not a service manager setting, so a
	// change alone neither updates nor restarts the service.
	RequiresNetworks []string `json:"requiresNetworks,omitempty"`
}

// HostNetwork is an HNS network the agent itself creates, when missing,
// before it starts the plan's services: flannel's "External" network,
// which puts the host's adapter on a virtual switch before flanneld
// creates its own network on it (creating the first network of an
// adapter interrupts the host's connections for a moment).
type HostNetwork struct {
	// Name of the network; HNS does not keep names unique, the agent
	// does.
	Name string `json:"name"`
	// Type is HostNetworkOverlay or HostNetworkL2Bridge.
	Type string `json:"type"`
	// AddressPrefix and Gateway of the network's one subnet, e.g.
	// 192.168.255.0/30 and 192.168.255.1.
	AddressPrefix string `json:"addressPrefix"`
	Gateway       string `json:"gateway"`
	// VSID of an Overlay network's subnet; 0 for L2Bridge.
	VSID int `json:"vsid,omitempty"`
	// AdapterAddress selects the network adapter the network binds to:
	// the one holding this IP address (the node IP).
	AdapterAddress string `json:"adapterAddress"`
}

// HostNetwork types (HNS network types).
const (
	HostNetworkOverlay  = "Overlay"
	HostNetworkL2Bridge = "L2Bridge"
)

// Recovery restarts a failed service after a delay; the failure count
// resets after ResetPeriodSeconds without failure.
type Recovery struct {
	RestartDelaySeconds int `json:"restartDelaySeconds,omitempty"`
	ResetPeriodSeconds  int `json:"resetPeriodSeconds,omitempty"`
}

// ErrorCode is a stable, machine-readable reason for a failed subcommand.
type ErrorCode string

// Error codes. The operator maps them to conditions; never change a value.
const (
	CodeUsage          ErrorCode = "Usage"
	CodeInvalidPlan    ErrorCode = "InvalidPlan"
	CodeUnsupportedOS  ErrorCode = "UnsupportedOS"
	CodeServiceFailed  ErrorCode = "ServiceFailed"
	CodeFileSystem     ErrorCode = "FileSystem"
	CodeDiskFull       ErrorCode = "DiskFull"
	CodeNetwork        ErrorCode = "Network"
	CodeNotFound       ErrorCode = "NotFound"
	CodeRebootRequired ErrorCode = "RebootRequired"
	CodeInternal       ErrorCode = "Internal"
	// CodeFileInUse: processes still held files the agent had to replace
	// or delete when the step's deadline passed; Error.Files names them.
	// Retry later: the command is idempotent.
	CodeFileInUse ErrorCode = "FileInUse"
	// CodeUpgradeFailed: self-upgrade could not start or check the new
	// agent and put the previous one back.
	CodeUpgradeFailed ErrorCode = "UpgradeFailed"
	// CodeUnsupported: the host lacks an API the step needs.
	CodeUnsupported ErrorCode = "Unsupported"
	// CodeFileMismatch: a file did not have the sha256 the request
	// names (StageCopy.From, or the copy written to the host).
	CodeFileMismatch ErrorCode = "FileMismatch"
	// CodeInvalidKeys: an AuthorizedKeysChange holds a line that is not
	// a public key, or a key both to add and to remove.
	CodeInvalidKeys ErrorCode = "InvalidKeys"
	// CodeInterrupted: an apply or rollback of another plan than the
	// applied one began and did not finish (its caller's connection
	// closed, the agent was killed, the host went down): its plan is the
	// applied one but not in place. Only Facts.ApplyError carries it;
	// applying the plan again ends it.
	CodeInterrupted ErrorCode = "Interrupted"
)

// Error is printed as {"error": {...}} with exit status 1 when a
// subcommand fails.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	// Files held by processes, for CodeFileInUse.
	Files []HeldFile `json:"files,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// ErrorOutput wraps an Error on stdout.
type ErrorOutput struct {
	Error *Error `json:"error"`
}

// Version is what `wicd version` prints.
type Version struct {
	Version string `json:"version"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// Facts is what `wicd facts` prints.
type Facts struct {
	// Hostname is the computer name in effect (the DNS host name).
	Hostname string `json:"hostname"`
	// PendingHostname is the computer name that takes effect at the next
	// boot (set by `wicd set-hostname` or otherwise), "" when none is
	// pending.
	PendingHostname string   `json:"pendingHostname,omitempty"`
	OSBuild         int      `json:"osBuild"`
	Addresses       []string `json:"addresses"`
	// FreeDiskBytes on the system drive.
	FreeDiskBytes int64 `json:"freeDiskBytes"`
	// Features maps Windows features the node needs (Containers) to
	// whether they are enabled.
	Features map[string]bool `json:"features"`
	// Files maps each file under InstallRoot to its sha256 (hex), except
	// the logs under LogDir. The agent caches hashes by size and
	// modification time, so unchanged payload files are not read again.
	Files map[string]string `json:"files"`
	// FileErrors maps files that could not be read (locked, no access)
	// to the reason; they are missing from Files.
	FileErrors map[string]string `json:"fileErrors,omitempty"`
	// AgentVersion of the wicd that answered.
	AgentVersion string `json:"agentVersion"`
	// AppliedPayloadVersion is the PayloadVersion of the applied plan
	// (AppliedPlanPath), "" when none was applied. It is the version the
	// last apply or rollback began with, whether it succeeded or not (see
	// ApplyError); the Node tells the kubelet version that runs.
	AppliedPayloadVersion string `json:"appliedPayloadVersion,omitempty"`
	// ApplyError is why the last apply, rollback or `wicd run` re-apply
	// of the applied plan failed, nil when it succeeded. Apply saves its
	// plan as the applied one before it changes anything, so the applied
	// plan is in place only when its sha256 (Files[AppliedPlanPath]) is
	// the plan's and ApplyError is nil. An apply of a new plan that has
	// not finished (still running, or cut short: its caller's connection
	// closed, the agent killed, the host down) shows CodeInterrupted.
	ApplyError *Error `json:"applyError,omitempty"`
	// PreviousPayloadVersion is the PayloadVersion of the previous plan
	// (AppliedPlanPreviousPath), the one `wicd rollback` applies; "" when
	// there is none.
	PreviousPayloadVersion string `json:"previousPayloadVersion,omitempty"`
	// PayloadVersions are the names of the folders under PayloadRoot,
	// sorted.
	PayloadVersions []string `json:"payloadVersions,omitempty"`
	// Time on the host (RFC 3339), for the clock check.
	Time string `json:"time"`
	// BootTime is when the host's current boot began, as Windows keeps
	// it (RFC 3339 with nanoseconds, UTC; the time Win32_OperatingSystem
	// calls LastBootUpTime). It changes at every boot, so the operator
	// tells by it that a reboot it asked for has happened: after
	// `shutdown /r /t N` a host keeps running its old boot, and answering,
	// for N seconds. "" from an agent that does not report it.
	BootTime string `json:"bootTime,omitempty"`
}

// Check is one preflight check.
type Check struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Preflight checks' names and failure reasons.
const (
	CheckOSBuild      = "OSBuild"
	CheckHostname     = "Hostname"
	CheckDiskSpace    = "DiskSpace"
	CheckContainers   = "ContainersFeature"
	CheckContainerd   = "ForeignContainerd"
	CheckClock        = "Clock"
	CheckFirewall     = "Firewall"
	ReasonUnsupported = "UnsupportedOSBuild"
	ReasonBadHostname = "InvalidHostname"
	ReasonLowDisk     = "LowDiskSpace"
	ReasonNoFeature   = "FeatureDisabled"
	ReasonForeign     = "ForeignContainerd"
	ReasonClockSkew   = "ClockSkew"
	ReasonNoFirewall  = "FirewallUnavailable"
)

// Preflight checks of the node services another installer may have put on
// the host. A kubelet or kube-proxy service is foreign when it neither
// runs from PayloadRoot (directly or under kube-log-runner) nor is
// installed as the applied plan lists it: the operator would take over
// or fight a node another tool manages.
const (
	CheckKubelet           = "ForeignKubelet"
	CheckKubeProxy         = "ForeignKubeProxy"
	ReasonForeignKubelet   = "ForeignKubelet"
	ReasonForeignKubeProxy = "ForeignKubeProxy"
)

// PreflightResult is what `wicd preflight` prints.
type PreflightResult struct {
	Passed bool    `json:"passed"`
	Checks []Check `json:"checks"`
}

// EnableFeaturesResult is what `wicd enable-features` prints.
type EnableFeaturesResult struct {
	Enabled        []string `json:"enabled,omitempty"`
	RebootRequired bool     `json:"rebootRequired"`
}

// Change is one thing `wicd apply` or `wicd cleanup` did.
type Change struct {
	// Kind: directory, file, service, network, firewallRule,
	// defenderExclusion, ChangeKindCertificate.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Action: created, updated, started, restarted, stopped, removed,
	// or ActionRepointed.
	Action string `json:"action"`
}

// ApplyResult is what `wicd apply` prints.
type ApplyResult struct {
	Changed bool     `json:"changed"`
	Changes []Change `json:"changes"`
}

// CleanupResult is what `wicd cleanup` prints.
type CleanupResult struct {
	Changes []Change `json:"changes"`
	// Waited lists files that processes still held after their services
	// stopped (a pod's container, a lingering service process); cleanup
	// waited for them to exit before removing the files.
	Waited []HeldFile `json:"waited,omitempty"`
	// Reconnect is true when cleanup removed HNS networks: that can reset
	// the host's network connections, the SSH session running cleanup
	// included. An operator whose session dropped reconnects and runs
	// cleanup again; cleanup is idempotent and removes networks last but
	// for the plans that name them, so a run that changes nothing means
	// the host is clean.
	Reconnect bool `json:"reconnect,omitempty"`
}

// Renaming a host. The operator gives a host the computer name a platform
// needs (on vSphere the Machine's name) by running exactly
// []string{AgentPath, SetHostnameArg, "--name=" + name}: the name is a
// lower-case RFC 1123 label of at most MaxHostnameLength characters, so it
// can be on a command line (the agent checks it again and refuses anything
// else with CodeUsage). Windows applies a new computer name at the next
// boot only; the operator reboots the host when the result says
// RebootRequired. Names are compared case-insensitively, as Windows does.
const (
	// SetHostnameArg is the subcommand that sets the computer name.
	SetHostnameArg = "set-hostname"
	// MaxHostnameLength is the longest computer name (the NetBIOS
	// limit, which Windows applies to the DNS host name it sets too).
	MaxHostnameLength = 15
)

// SetHostnameResult is what `wicd set-hostname` prints.
type SetHostnameResult struct {
	// Hostname is the computer name in effect now.
	Hostname string `json:"hostname"`
	// Pending is the name that takes effect at the next boot, "" when
	// none is pending.
	Pending string `json:"pending,omitempty"`
	// Changed is true when this run set the name (it was neither in
	// effect nor pending).
	Changed bool `json:"changed"`
	// RebootRequired is true when the asked-for name is pending: only a
	// reboot puts it in effect. False when it already is in effect.
	RebootRequired bool `json:"rebootRequired"`
}

// HashResult is what `wicd hash <path>` prints.
type HashResult struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// The service host. Windows' service control manager starts a service's
// program and waits (30 s by default) for it to connect to the manager
// (StartServiceCtrlDispatcher) and report running; a program that never
// does, such as flanneld, fails to start with
// ERROR_SERVICE_REQUEST_TIMEOUT (1053) and is killed. Such a program runs
// under the agent's service host instead: the service's command line is
// exactly ServiceHostArgs(name) of the payload's wicd.exe, and everything
// variable, the program and its arguments, is in the ServiceHostConfig a
// plan writes to ServiceHostConfigPath(name). The service host reports
// running once the program has started, forwards Stop and Shutdown to it
// (the program and every process it started end, within
// ServiceHostStopTimeout), and ends the service with the program's exit
// code as its service-specific exit code.
const (
	// ServiceHostArg is the subcommand the service manager runs.
	ServiceHostArg = "service-host"
	// ServiceHostDir holds one ServiceHostConfig per hosted service.
	ServiceHostDir = InstallRoot + `\service-host`
	// ServiceHostStopTimeout bounds how long the service host waits for
	// its program to end after Stop before it reports the service
	// stopped.
	ServiceHostStopTimeout = 20 * time.Second
)

// ServiceHostArgs is the fixed command line of the service host for
// service name.
func ServiceHostArgs(name string) []string {
	return []string{ServiceHostArg, "--service", name}
}

// ServiceHostConfigPath is where the service host of service name reads
// its ServiceHostConfig: ServiceHostDir\<name>.json.
func ServiceHostConfigPath(name string) string {
	return ServiceHostDir + `\` + name + ".json"
}

// ServiceHostConfig is the program a service host runs.
type ServiceHostConfig struct {
	// Binary is the program's absolute path.
	Binary string `json:"binary"`
	// Args are its arguments, each one argument.
	Args []string `json:"args,omitempty"`
}

// IsServiceHost reports whether a service runs its program under the
// service host: its binary is a wicd.exe and its arguments are exactly
// ServiceHostArgs(s.Name).
func IsServiceHost(s Service) bool {
	base := s.Binary[strings.LastIndexAny(s.Binary, `\/`)+1:]
	want := ServiceHostArgs(s.Name)
	if !strings.EqualFold(base, "wicd.exe") || len(s.Args) != len(want) {
		return false
	}
	for i := range want {
		if s.Args[i] != want[i] {
			return false
		}
	}
	return true
}
