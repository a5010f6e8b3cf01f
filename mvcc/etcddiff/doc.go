// Package etcddiff checks quiver's mvcc package against etcd's own store
// (go.etcd.io/etcd/server/v3/storage/mvcc, with etcd's transaction code):
// the same seeded random operations go to both, and every result must be
// the same. It is a module of its own so that quiver does not depend on
// etcd.
package etcddiff
