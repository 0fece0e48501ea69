// Package controllers holds one reconciler per kind or concern: the
// WindowsInstance controller (the one place that touches a host), the
// inventory controllers that translate the windows-instances ConfigMap and
// Windows Machines into WindowsInstance objects, and the CSR approver.
//
// RBAC markers live beside the reconciler that needs the permission;
// `make manifests` turns them into config/rbac/role.yaml.
package controllers
