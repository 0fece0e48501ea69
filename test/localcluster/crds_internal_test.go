package localcluster

import (
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLastEstablished(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	crd := func(name string, conds ...apiextensionsv1.CustomResourceDefinitionCondition) apiextensionsv1.CustomResourceDefinition {
		c := apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
		c.Status.Conditions = conds
		return c
	}
	cond := func(typ apiextensionsv1.CustomResourceDefinitionConditionType, st apiextensionsv1.ConditionStatus, at time.Time) apiextensionsv1.CustomResourceDefinitionCondition {
		return apiextensionsv1.CustomResourceDefinitionCondition{Type: typ, Status: st, LastTransitionTime: metav1.NewTime(at)}
	}
	est, names := apiextensionsv1.Established, apiextensionsv1.NamesAccepted
	tests := []struct {
		name    string
		crds    []apiextensionsv1.CustomResourceDefinition
		want    time.Time
		wantErr string
	}{
		{name: "none", want: time.Time{}},
		{name: "one", crds: []apiextensionsv1.CustomResourceDefinition{crd("a", cond(est, "True", t0))}, want: t0},
		{
			name: "the latest of several, whatever their order",
			crds: []apiextensionsv1.CustomResourceDefinition{
				crd("a", cond(est, "True", t0.Add(time.Second))),
				crd("b", cond(names, "True", t0.Add(5*time.Second)), cond(est, "True", t0.Add(3*time.Second))),
				crd("c", cond(est, "True", t0)),
			},
			want: t0.Add(3 * time.Second),
		},
		{
			name:    "not Established yet",
			crds:    []apiextensionsv1.CustomResourceDefinition{crd("a", cond(est, "True", t0)), crd("b", cond(names, "True", t0))},
			wantErr: "CRD b is not Established",
		},
		{
			name:    "Established False",
			crds:    []apiextensionsv1.CustomResourceDefinition{crd("a", cond(est, "False", t0))},
			wantErr: "CRD a is not Established",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lastEstablished(tc.crds)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
