package wicd

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// ReadServiceHostConfig reads and checks the program the service host of
// service name runs (wicdapi.ServiceHostConfigPath(name)). Errors are
// CodeUsage for a bad name, CodeNotFound for a missing file and
// CodeInvalidPlan for one that does not decode or names no absolute
// program path.
func ReadServiceHostConfig(files Files, name string) (*wicdapi.ServiceHostConfig, error) {
	if !serviceName.MatchString(name) {
		return nil, codedError(wicdapi.CodeUsage, "service name %q is not valid", name)
	}
	return readStrict(files, wicdapi.ServiceHostConfigPath(name), "service host configuration", validateServiceHostConfig)
}

func validateServiceHostConfig(c *wicdapi.ServiceHostConfig) error {
	if !isAbsWindowsPath(c.Binary) || len(c.Binary) <= 3 {
		return fmt.Errorf("program %q is not an absolute Windows path", c.Binary)
	}
	for _, a := range c.Args {
		if strings.Contains(a, "\x00") {
			return fmt.Errorf("program %s: an argument holds a NUL character", c.Binary)
		}
	}
	return nil
}

// hostedConfigs decodes the ServiceHostConfig the plan writes for each of
// its service-host services, by service name; validatePlan has checked
// them (validateServiceHosts).
func hostedConfigs(p *wicdapi.Plan) map[string]*wicdapi.ServiceHostConfig {
	out := map[string]*wicdapi.ServiceHostConfig{}
	for _, s := range p.Services {
		if !wicdapi.IsServiceHost(s) {
			continue
		}
		if c, err := planServiceHostConfig(p, s.Name); err == nil {
			out[s.Name] = c
		}
	}
	return out
}

// planServiceHostConfig decodes the plan's file for the service host of
// service name.
func planServiceHostConfig(p *wicdapi.Plan, name string) (*wicdapi.ServiceHostConfig, error) {
	path := wicdapi.ServiceHostConfigPath(name)
	for _, f := range p.Files {
		if !samePath(f.Path, path) {
			continue
		}
		c := &wicdapi.ServiceHostConfig{}
		if err := json.Unmarshal(f.Content, c); err != nil {
			return nil, fmt.Errorf("service %s: %s: %w", name, path, err)
		}
		if err := validateServiceHostConfig(c); err != nil {
			return nil, fmt.Errorf("service %s: %s: %w", name, path, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("service %s runs under the service host, but the plan writes no %s", name, path)
}

// validateServiceHosts checks that every service-host service of the
// plan has its program in the plan's files.
func validateServiceHosts(p *wicdapi.Plan) error {
	for _, s := range p.Services {
		if !wicdapi.IsServiceHost(s) {
			continue
		}
		if _, err := planServiceHostConfig(p, s.Name); err != nil {
			return err
		}
	}
	return nil
}

// commandArgs are the arguments that tell which files a service uses:
// its own, and for a service-host service its configuration's path, the
// hosted program and that program's arguments.
func commandArgs(svc wicdapi.Service, hosted map[string]*wicdapi.ServiceHostConfig) []string {
	c, ok := hosted[svc.Name]
	if !ok || !wicdapi.IsServiceHost(svc) {
		return svc.Args
	}
	out := append([]string{}, svc.Args...)
	out = append(out, wicdapi.ServiceHostConfigPath(svc.Name), c.Binary)
	return append(out, c.Args...)
}
