/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"fmt"
	"strings"
)

// renderContainerdConfig renders containerd's config.toml, format version
// 2, which containerd 1.7 reads and containerd 2.x migrates on load.
//
// The runhcs shim runs from ContainerdShimPath, a copy outside the
// versioned payload directories. The CNI plugins are read from the payload's versioned directory, so an
// upgrade or a rollback switches them together with the other binaries.
// Registry mirrors live in one hosts.toml per registry under
// ContainerdHostsDir (see renderHostsTOML).
func renderContainerdConfig(r *resolved) []byte {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	line("# Rendered by the Windows Machine Config Operator; changes are overwritten.")
	line("version = 2")
	line("root = %s", tomlString(ContainerdRoot))
	line("state = %s", tomlString(ContainerdState))
	line("")
	line("[grpc]")
	line("  address = %s", tomlString(ContainerdPipe))
	line("")
	line("[%s]", cri)
	line("  sandbox_image = %s", tomlString(r.spec.Containerd.PauseImage))
	line("")
	line("[%s.cni]", cri)
	line("  bin_dir = %s", tomlString(CNIBinDir))
	line("  conf_dir = %s", tomlString(CNIConfigDir))
	line("  max_conf_num = 1")
	line("")
	line("[%s.containerd]", cri)
	line("  snapshotter = %s", tomlString("windows"))
	line("  default_runtime_name = %s", tomlString("runhcs-wcow-process"))
	line("")
	line("[%s.containerd.runtimes.runhcs-wcow-process]", cri)
	line("  runtime_type = %s", tomlString("io.containerd.runhcs.v1"))
	line("  runtime_path = %s", tomlString(ContainerdShimPath))
	line("")
	line("[%s.registry]", cri)
	line("  config_path = %s", tomlString(ContainerdHostsDir))
	return []byte(b.String())
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
