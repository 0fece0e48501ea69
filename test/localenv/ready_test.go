/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

// The operator (no leader election, as make demo and make bench run it)
// answers /readyz only once it acts on what is listed: when the
// environment has seen it ready, its controllers have started, as their
// metrics show. Before, /readyz took a manager still filling its caches
// for a replica waiting to lead, and a host listed at that moment waited
// for the start-up (0.4-1.5 s of make bench's T(1)).
func TestReadyOperatorHasStartedItsControllers(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := localenv.Start(ctx, localenv.Options{Hosts: 1, Log: testLog{t}})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()

	// Read once, at once: the environment returns as soon as /readyz
	// said 200, and the metrics must already hold the controllers.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.MetricsURL, nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	for _, c := range []string{"windowsinstance", "configmap-inventory", "csr-approver", "clusterconfig"} {
		g.Expect(string(body)).To(ContainSubstring(`controller_runtime_max_concurrent_reconciles{controller="`+c+`"}`),
			"the %s controller has not started, yet the operator said it was ready; operator log:\n%s", c, proc.TailFile(env.OperatorLog, 30))
	}
}
