//go:build tools

// Package tools pins the real components that node-healer's tests and demo
// build from Go modules (kept out of the project's own go.mod).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
