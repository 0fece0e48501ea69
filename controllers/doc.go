// Package controllers wires the operator's controllers into a manager;
// each concern is a package of its own:
//
//   - instance: the WindowsInstance controller, the one place that touches
//     a host (SSH, the agent, the Node);
//   - inventory: the windows-instances ConfigMap and Windows Machines,
//     translated into WindowsInstances, never touching a host;
//   - csrapproval: the strict approver of Windows kubelets' CSRs;
//   - wnc: the WindowsNodeConfig's status (does its spec render here);
//   - core: what they share (configuration, scheme, the rules of node
//     names and ownership, Event recording).
//
// A test (walls_test.go) holds these walls from the real import graph.
// RBAC markers live beside the reconciler that needs the permission;
// `make manifests` turns them into config/rbac/role.yaml.
package controllers
