//go:build tools

// Package npd pins node-problem-detector for node-healer's NPD config tests.
// It is its own module so that NPD's Kubernetes dependencies do not clash
// with the kube-apiserver pins in ../go.mod. Build it with
// scripts/tools-prom.sh node-problem-detector.
package npd

import (
	_ "k8s.io/node-problem-detector/cmd/nodeproblemdetector"
)
