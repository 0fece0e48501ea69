package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/upgradewatch"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// upgradeResult is one upgrade of every host to a payload that changes
// one component.
type upgradeResult struct {
	change         string // the changed file
	maxUnavailable string
	hosts          int
	upgraded       int
	duration       time.Duration
	peak           int     // hosts holding an upgrade slot at once
	bytesPerHost   float64 // received per host during the upgrade
	fileSize       int64   // the changed file's size
	notReady       time.Duration
	notReadyMax    time.Duration // longest of one Node
	drained        int           // Nodes cordoned at some point
	err            string
}

// upgradeStep is a payload the operator is restarted with.
type upgradeStep struct {
	change, maxUnavailable string
	dir                    string
	m                      *payload.Manifest
}

// runUpgradePhase joins N hosts on a base payload, then restarts the
// operator with payloads that change one component each: windows_exporter
// (in place), then the kubelet with maxUnavailable 1 (one host at a time,
// as upstream WMCO) and the kubelet again with the default maxUnavailable.
func runUpgradePhase(ctx context.Context, c config, r *report, work string) error {
	n := c.upgradeHosts
	dir := filepath.Join(work, "upgrade-payloads")
	size := c.fileSizeMiB << 20
	base, err := testpayload.Write(filepath.Join(dir, "base"), testpayload.Options{Version: "v1.37.1-base", KubernetesVersion: "v1.37.1", FileSize: size})
	if err != nil {
		return err
	}
	derive := func(from, name, kube, change string) (upgradeStep, error) {
		m, err := testpayload.Derive(filepath.Join(dir, from), filepath.Join(dir, name), testpayload.DeriveOptions{
			Change: []string{change}, KubernetesVersion: kube, Size: size,
		})
		return upgradeStep{dir: filepath.Join(dir, name), m: m}, err
	}
	exporter, err := derive("base", "exporter", "", payload.WindowsExporterPath)
	if err != nil {
		return err
	}
	exporter.change, exporter.maxUnavailable = payload.WindowsExporterPath, "default (25%)"
	kubelet1, err := derive("exporter", "kubelet1", "v1.37.2", payload.KubeletPath)
	if err != nil {
		return err
	}
	kubelet1.change, kubelet1.maxUnavailable = payload.KubeletPath, "1 (as upstream WMCO)"
	kubelet2, err := derive("kubelet1", "kubelet2", "v1.37.3", payload.KubeletPath)
	if err != nil {
		return err
	}
	kubelet2.change, kubelet2.maxUnavailable = payload.KubeletPath, "default (25%)"
	kubelets := testpayload.KubeletBinaries(base, exporter.m, kubelet1.m, kubelet2.m)

	logf("Upgrade N=%d: starting the control plane, %d simulated hosts and the operator", n, n)
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: n, OperatorBinary: c.operator, PayloadDir: filepath.Join(dir, "base"),
		BandwidthLimit: int64(c.bandwidthMB * 1e6),
		Host: simagent.Options{
			ServiceStartDelay: c.serviceDelay, KubeletStatusInterval: c.statusEvery, KubeletBinaries: kubelets,
		},
		Log:        prefixWriter{prefix: fmt.Sprintf("  [upgrade N=%d] ", n)},
		KeepLogsIn: c.keepLogsIn(fmt.Sprintf("upgrade-n%d", n)),
	})
	if err != nil {
		return err
	}
	defer func() {
		logf("Upgrade N=%d: stopping the environment", n)
		if err := env.Stop(); err != nil {
			logf("stop: %v", err)
		}
	}()
	if r.kubernetes == "" {
		r.kubernetes = kubernetesVersion(env.Clientset)
	}
	if err := env.SetInventory(ctx, env.Hosts...); err != nil {
		return err
	}
	stalls := &stallWatch{since: map[string]time.Time{}, flagged: map[string]bool{}}
	if _, err := waitAllReady(ctx, env, n, time.Now(), c.joinTimeout, stalls, nil); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	var errs []error
	for _, step := range []upgradeStep{exporter, kubelet1, kubelet2} {
		res, err := runUpgrade(ctx, c, env, step)
		if err != nil {
			logf("Upgrade to %s: %v", step.m.Version, err)
			errs = append(errs, fmt.Errorf("upgrade to %s: %w", step.m.Version, err))
			res.err = err.Error()
		}
		r.upgrades = append(r.upgrades, res)
		if err != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// runUpgrade restarts the operator with the payload of step (as an
// operator upgrade ships a new one) and waits until every host runs it.
func runUpgrade(ctx context.Context, c config, env *localenv.Env, step upgradeStep) (upgradeResult, error) {
	n := len(env.Hosts)
	res := upgradeResult{change: step.change, maxUnavailable: step.maxUnavailable, hosts: n}
	f, _ := step.m.File(step.change)
	res.fileSize = f.Size
	if err := setMaxUnavailable(ctx, env.Client, step.maxUnavailable); err != nil {
		return res, err
	}
	env.StopOperator()
	wc, ok := env.Client.(client.WithWatch)
	if !ok {
		return res, errors.New("the environment's client cannot watch")
	}
	watcher := upgradewatch.Start(ctx, wc, env.Clientset)
	defer watcher.Stop()
	before := snapshot(env.Hosts)
	logf("Upgrade N=%d to %s (%s changed, maxUnavailable %s): restarting the operator with it", n, step.m.Version, step.change, step.maxUnavailable)
	t0 := time.Now()
	env.PayloadDir = step.dir
	if err := env.RestartOperator(ctx); err != nil {
		return res, err
	}
	deadline := time.NewTimer(c.joinTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := -1
	for {
		var list wmcov1.WindowsInstanceList
		if err := env.Client.List(ctx, &list); err == nil {
			done := 0
			for _, wi := range list.Items {
				if wi.Status.PayloadVersion == step.m.Version && wi.Status.Upgrade == nil &&
					meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady) {
					done++
				}
			}
			res.upgraded = done
			if done != last {
				logf("  %6.1fs  %d/%d upgraded", time.Since(t0).Seconds(), done, n)
				last = done
			}
			if done >= n {
				break
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline.C:
			return res, fmt.Errorf("%d of %d upgraded within %s", res.upgraded, n, c.joinTimeout)
		case <-tick.C:
		}
	}
	res.duration = time.Since(t0)
	after := snapshot(env.Hosts)
	var bytes []int64
	for i := range after {
		bytes = append(bytes, after[i].BytesReceived-before[i].BytesReceived)
	}
	res.bytesPerHost = statOf(bytes).mean
	seen := watcher.Stop()
	res.peak, res.notReady, res.notReadyMax, res.drained = seen.Peak, seen.NotReadyTotal, seen.NotReadyLongest, len(seen.Cordoned)
	logf("Upgrade N=%d to %s: all upgraded in %s; %.2f MB received per host for a %.2f MB file; Node NotReady %s in total; peak %d upgrading",
		n, step.m.Version, res.duration.Round(time.Millisecond), res.bytesPerHost/1e6, float64(res.fileSize)/1e6, res.notReady.Round(time.Millisecond), res.peak)
	return res, nil
}

func setMaxUnavailable(ctx context.Context, c client.Client, v string) error {
	mu := intstr.FromString("25%")
	if v[0] == '1' && v[1] == ' ' {
		mu = intstr.FromInt32(1)
	}
	cfg := &wmcov1.WindowsNodeConfig{}
	err := c.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)
	switch {
	case err == nil:
		// A merge patch: the status controller writes the object too.
		patch := client.MergeFrom(cfg.DeepCopy())
		cfg.Spec.MaxUnavailable = &mu
		return c.Patch(ctx, cfg, patch)
	case client.IgnoreNotFound(err) == nil:
		cfg = &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName}, Spec: wmcov1.WindowsNodeConfigSpec{MaxUnavailable: &mu}}
		return c.Create(ctx, cfg)
	default:
		return err
	}
}
