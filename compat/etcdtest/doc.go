// Package etcdtest runs etcd's own storage tests with bbolt replaced by
// quiver's compat module (see etcd_test.go). It has no code of its own.
package etcdtest
