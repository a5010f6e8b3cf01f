// Command capacity grows a database to target sizes (1, 4, 16, 64 GiB by
// default) with the fragmenting workload of the bench package (random 16-byte
// keys, small and large values, inserts mixed with updates and deletes) and
// measures it at each size, for quiver and bbolt side by side:
//
//   - commit latency p50/p99/max of small synced commits (10 operations),
//     and the time each spent allocating pages (quiver's AllocTime; bbolt's
//     SpillTime, which includes its allocation);
//   - what the p99 is made of: the p99 of the time a commit spent in write
//     and sync calls (both engines' TxStats.WriteTime: the device's share)
//     and the p99 of the rest of its latency (tree work, allocation, page
//     faults); the major page faults a commit waited on, and the p99 of the
//     commits that had none (a file larger than the page cache has them);
//   - the file size against the live key and value bytes;
//   - the time to open the file (warm page cache);
//   - the peak resident set of the process.
//
// Each engine runs in a child process of its own (the same binary with
// -child), so that peak RSS is the engine's alone; engines run one after the
// other and each file is removed when its engine is done, so the disk needs
// room for one database of the largest size. An engine whose growth to a
// size takes longer than -budget stops there and the report says so.
//
//	go run ./cmd/capacity -sizes 1,4,16 -engines quiver-hashmap,bbolt-array -out capacity.json
//
// Growth is "mixed" by default: commits of 1000 operations, half of them
// inserts, the rest updates and deletes, as a live database grows. Each
// such commit rewrites ~1000 random leaves and their branches for under a
// megabyte of net growth, so past 16 GiB it grows at a few MB/s and 64 GiB
// takes most of a day. -grow bulk reaches large sizes in a fraction of the
// time with the same random keys and values: insert-only commits of
// -bulk-ops keys (large commits share the branch pages they rewrite), then,
// at each size, a pass deleting -fragment of the live keys in commits of
// 1000, which scatters free pages over the whole file before the
// measurement. Compare sizes within one mode.
//
// Users with large databases usually have a hot set that fits in RAM. With
// -hot keys,ops (0.1,0.9 by default), each size is measured a second time
// after the uniform measurement: the live keys of a contiguous keys
// fraction of the key space are first read into the page cache, then the
// same number of small commits send the fraction ops of their operations
// (inserts, updates and deletes alike) there and the rest elsewhere. -hot ""
// measures uniform keys only.
//
// Results go to stdout as a table and, with -out, as JSON lines for
// cmd/capacityplot.
package main
