package ctrltest

import (
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics gathers the operator's metrics (controller-runtime's registry,
// which every manager of the test binary shares) into values keyed by the
// metric's name and its labels, "name,label=value,...": a gauge's or
// counter's value, a histogram's sample count.
func Metrics() (map[string]float64, error) {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return nil, err
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				values[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				values[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				values[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return values, nil
}
