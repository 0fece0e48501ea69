// Package wicdapi is the contract between the operator and its node agent,
// wicd: the Plan the operator renders and uploads, and the JSON each wicd
// subcommand prints on stdout. It has no dependencies beyond the standard
// library so that the agent stays small.
//
// Compatibility: fields are only ever added. A Plan carries SchemaVersion
// so an agent can refuse a plan newer than it understands.
package wicdapi

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
	// AppliedPlanPath is where the agent keeps the last plan it applied;
	// `wicd run` re-applies it and `wicd cleanup` undoes it.
	AppliedPlanPath = `C:\k\applied-plan.json`
	// PayloadRoot holds one directory per payload version.
	PayloadRoot = `C:\k\payload`
	// LogDir holds the services' logs.
	LogDir = `C:\k\log`
	// AgentServiceName is the Windows service that runs `wicd run`.
	AgentServiceName = "windows-instance-config-daemon"
)

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
	// Services to install, in any order: the agent orders them by their
	// dependencies.
	Services []Service `json:"services,omitempty"`
	// Networks are HNS networks the plan's services create; cleanup
	// removes them.
	Networks []string `json:"networks,omitempty"`
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
	// Env sets environment variables of the service.
	Env map[string]string `json:"env,omitempty"`
	// StartType is automatic unless set.
	StartType StartType `json:"startType,omitempty"`
	// Recovery is what the service manager does when the service fails.
	Recovery Recovery `json:"recovery"`
}

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
)

// Error is printed as {"error": {...}} with exit status 1 when a
// subcommand fails.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
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
	Hostname  string   `json:"hostname"`
	OSBuild   int      `json:"osBuild"`
	Addresses []string `json:"addresses"`
	// FreeDiskBytes on the system drive.
	FreeDiskBytes int64 `json:"freeDiskBytes"`
	// Features maps Windows features the node needs (Containers) to
	// whether they are enabled.
	Features map[string]bool `json:"features"`
	// Files maps each file under InstallRoot to its sha256 (hex).
	Files map[string]string `json:"files"`
	// AgentVersion of the wicd that answered.
	AgentVersion string `json:"agentVersion"`
	// Time on the host (RFC 3339), for the clock check.
	Time string `json:"time"`
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
	ReasonUnsupported = "UnsupportedOSBuild"
	ReasonBadHostname = "InvalidHostname"
	ReasonLowDisk     = "LowDiskSpace"
	ReasonNoFeature   = "FeatureDisabled"
	ReasonForeign     = "ForeignContainerd"
	ReasonClockSkew   = "ClockSkew"
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
	// Kind: directory, file, service, network.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Action: created, updated, started, restarted, stopped, removed.
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
}

// HashResult is what `wicd hash <path>` prints.
type HashResult struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
