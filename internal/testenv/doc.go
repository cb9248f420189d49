// Package testenv starts real components for node-healer's integration and
// end-to-end tests and for `make demo`: a redis-server on a free port,
// etcd + kube-apiserver, and kwok playing the kubelets. Binaries come from
// `make tools` (see tools/ and TOOLCHAIN.md); nothing here is a fake.
package testenv
