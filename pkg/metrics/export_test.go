package metrics

// KubeletCSRPEM is kubeletCSRPEM for the tests of package metrics_test.
var KubeletCSRPEM = kubeletCSRPEM
