package ctrltest

import (
	"context"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// NodeMayListNodes asks the API server (authorization mode Node,RBAC)
// through a SubjectAccessReview whether the kubelet credentials of node,
// the user system:node:<node> in group system:nodes, may list every Node,
// as flanneld's kube subnet manager does.
func NodeMayListNodes(g Gomega, node string) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "system:node:" + node, Groups: []string{"system:nodes", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"},
	}}
	g.Expect(Client.Create(context.Background(), sar)).To(Succeed())
	return sar.Status.Allowed
}
