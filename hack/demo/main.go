// Command demo runs the product on this machine: a local control plane,
// simulated Windows hosts and the operator as its own process. It lists
// the hosts in the windows-instances ConfigMap, shows each host's phase as
// it changes, and prints the final state. `make demo` runs it.
//
//	DEMO_HOSTS=2      how many simulated hosts
//	DEMO_EXIT=1       exit once every host is Ready (non-zero if not within DEMO_TIMEOUT)
//	DEMO_TIMEOUT=5m   bound for DEMO_EXIT
//	DEMO_PAYLOAD=auto the Windows payload: real (payload/ as make payload
//	                  builds it; about 300 MB per host), fake (8 MiB of
//	                  random bytes per file), or auto: real when built
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

func main() {
	operator := flag.String("operator", "", "operator binary (built from cmd/operator when empty)")
	flag.Parse()
	os.Exit(run(*operator))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func run(operator string) int {
	hosts := envInt("DEMO_HOSTS", 2)
	exitWhenReady := os.Getenv("DEMO_EXIT") == "1"
	timeout := 5 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("DEMO_TIMEOUT")); err == nil {
		timeout = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	say("Windows Machine Config Operator demo: %d simulated Windows hosts", hosts)
	start := time.Now()
	// Realistic enough to watch: payload files over a 40 MB/s link,
	// services that take a moment to start.
	opts := localenv.Options{
		Hosts: hosts, OperatorBinary: operator, Log: logWriter{},
		BandwidthLimit: 40 << 20,
		Host:           simagent.Options{ServiceStartDelay: 300 * time.Millisecond},
	}
	if err := choosePayload(&opts, os.Getenv("DEMO_PAYLOAD")); err != nil {
		say("payload: %v", err)
		return 1
	}
	env, err := localenv.Start(ctx, opts)
	if err != nil {
		say("start: %v", err)
		return 1
	}
	defer func() {
		say("Stopping the operator, the simulated hosts and the control plane")
		if err := env.Stop(); err != nil {
			say("stop: %v", err)
		}
	}()

	say("Listing %d hosts in ConfigMap %s/%s", hosts, localenv.Namespace, wmcov1.InventoryConfigMapName)
	if err := env.SetInventory(ctx, env.Hosts...); err != nil {
		say("write inventory: %v", err)
		return 1
	}
	ready := watchProgress(ctx, env, start, timeout)
	if ready {
		// What a user's script or CI job would do: kstatus conditions.
		ready = kubectlWait(env, timeout)
	}
	printTable(env)
	if !ready {
		say("Not every host became Ready within %s. Last operator log lines:\n%s", timeout, proc.TailFile(env.OperatorLog, 20))
		return 1
	}
	say("All %d hosts are Ready nodes, %s after start", hosts, time.Since(start).Round(100*time.Millisecond))
	if exitWhenReady {
		return 0
	}
	say("The demo keeps running. In another terminal:")
	say("  export KUBECONFIG=%s", env.Cluster.KubeconfigPath)
	say("  %s get windowsinstances,nodes -o wide", env.Cluster.Kubectl())
	say("  %s wait --for=condition=Ready windowsinstances --all", env.Cluster.Kubectl())
	say("  %s get events -A --field-selector reason=NodeJoined", env.Cluster.Kubectl())
	say("  curl -s %s | grep ^wmco_", env.MetricsURL)
	say("Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return 0
}

// choosePayload sets the payload of the demo by DEMO_PAYLOAD.
func choosePayload(opts *localenv.Options, mode string) error {
	switch mode {
	case "", "auto", "real":
		parent, _, m, err := testpayload.Real()
		switch {
		case err == nil:
			say("Real Windows payload %s (Kubernetes %s) from %s", m.Version, m.KubernetesVersion, parent)
			opts.PayloadDir = parent
			return nil
		case mode == "real":
			return err
		case !errors.Is(err, testpayload.ErrNoRealPayload):
			return err
		}
		say("No real payload built (make payload): a fake one, 8 MiB of random bytes per file")
	case "fake":
		say("A fake payload: 8 MiB of random bytes per file")
	default:
		return fmt.Errorf("DEMO_PAYLOAD=%q: want real, fake or auto", mode)
	}
	opts.PayloadFileSize = 8 << 20
	return nil
}

// watchProgress prints each host's phase as it changes until all are
// Ready, the bound passes or the demo is interrupted. A display loop, not
// a controller: polling the API is fine here.
func watchProgress(ctx context.Context, env *localenv.Env, start time.Time, timeout time.Duration) bool {
	last := map[string]string{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		var list wmcov1.WindowsInstanceList
		if err := env.Client.List(ctx, &list); err == nil {
			readyCount := 0
			for _, wi := range list.Items {
				phase := string(wi.Status.Phase)
				if phase == "" {
					phase = "Pending"
				}
				line := phase
				if wi.Status.Message != "" && wi.Status.Phase != wmcov1.PhaseReady {
					line += " - " + wi.Status.Message
				}
				if last[wi.Name] != line {
					last[wi.Name] = line
					fmt.Printf("  %7.1fs  %-16s %s\n", time.Since(start).Seconds(), wi.Name, line)
				}
				if wi.Status.Phase == wmcov1.PhaseReady {
					readyCount++
				}
			}
			if readyCount == len(env.Hosts) {
				return true
			}
		}
		if env.OperatorExited() {
			say("The operator exited")
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
}

// kubectlWait runs kubectl wait --for=condition=Ready on every
// WindowsInstance, as a user's script would, and shows its output.
func kubectlWait(env *localenv.Env, timeout time.Duration) bool {
	say("kubectl wait --for=condition=Ready windowsinstances --all")
	cmd := exec.Command(env.Cluster.Kubectl(), "wait", "--for=condition=Ready", "windowsinstances", "--all", "--timeout="+timeout.String())
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Cluster.KubeconfigPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		say("kubectl wait: %v", err)
		return false
	}
	return true
}

func printTable(env *localenv.Env) {
	fmt.Println()
	cmd := exec.Command(env.Cluster.Kubectl(), "get", "windowsinstances,nodes", "-o", "wide")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Cluster.KubeconfigPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		say("kubectl: %v", err)
	}
	fmt.Println()
}

func say(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

type logWriter struct{}

func (logWriter) Write(p []byte) (int, error) {
	fmt.Print("==> " + string(p))
	return len(p), nil
}
