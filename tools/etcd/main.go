// Command etcd runs the etcd v3.5 server for node-healer's tests and demo.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
