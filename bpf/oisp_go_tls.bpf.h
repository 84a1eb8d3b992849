/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Go's crypto/tls, in unstripped Go executables (Go >= 1.17 on amd64: register ABI).
 *
 * Included at the very end of oisp.bpf.c: it uses that file's maps and helpers
 * (emit_data, emit_ctl, count, wakeup_flags, oisp_stream_offsets).
 *
 * Never a uretprobe on Go code: a uretprobe rewrites the return address on the
 * goroutine stack, and Go copies and walks its stacks (growth, GC, tracebacks), so the
 * program crashes. Returns are seen instead by plain uprobes on each RET instruction
 * of the function, found by user space (capture/probe_points.py).
 *
 * Go's internal ABI on amd64, for crypto/tls.(*Conn).Read/Write(b []byte) (n int, err):
 * RAX = *Conn (the connection id), RBX = b.ptr, RCX = b.len on entry; RAX = n at RET;
 * R14 = the current goroutine (g) throughout.
 *
 * Placement contract with user space: each entry probe sits on the `jbe` of the
 * function's stack-growth check (`cmp 0x10(%r14),%rsp|%r12; jbe morestack`). A conditional
 * jump is emulated by the kernel (no single-step, about 1 us instead of 10), RAX, RBX and
 * RCX still hold the arguments there, and the flags tell whether the stack is about to
 * grow: then runtime.morestack copies the stack and re-runs the function from its first
 * instruction, so the same call reaches the probe a second time. Acting only when the
 * jump is not taken sees every call exactly once.
 */
#ifndef OISP_GO_TLS_BPF_H
#define OISP_GO_TLS_BPF_H

#define OISP_X86_CF 0x1
#define OISP_X86_ZF 0x40

/* `jbe` jumps when CF or ZF is set: the stack is too small, morestack runs next. */
static __always_inline int go_stack_will_grow(struct pt_regs *ctx)
{
	return (ctx->flags & (OISP_X86_CF | OISP_X86_ZF)) != 0;
}

/* Read's data exists only at RET. A goroutine can move to another thread while it
 * blocks in Read, so the arguments are keyed by goroutine, not by thread. */
struct go_call_key {
	__u64 g;
	__u32 pid;
	__u32 pad;
};

struct go_read_args {
	__u64 conn;
	__u64 buf;
	__u64 ts_ns;
};

/* LRU: a Read that panics never reaches a RET, and its entry must not stay forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct go_read_args);
} oisp_go_read_args SEC(".maps");

/* Write's data is complete and readable at entry: emit it there. One emulated probe per
 * call instead of an entry probe plus a single-stepped RET probe, no goroutine stash, and
 * the record is stamped when the request left, like the OpenSSL path does. A Write that
 * fails (broken connection) is still reported; its stream ends there anyway. */
SEC("uprobe")
int oisp_go_tls_write(struct pt_regs *ctx)
{
	if (go_stack_will_grow(ctx))
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	emit_data(pid_tgid, ctx->ax, ctx->bx, ctx->cx, bpf_ktime_get_ns(), OISP_DIR_WRITE, OISP_SRC_GO);
	return 0;
}

SEC("uprobe")
int oisp_go_tls_read_entry(struct pt_regs *ctx)
{
	if (go_stack_will_grow(ctx))
		return 0;
	struct go_call_key key = {.g = ctx->r14, .pid = bpf_get_current_pid_tgid() >> 32};
	struct go_read_args args = {.conn = ctx->ax, .buf = ctx->bx, .ts_ns = bpf_ktime_get_ns()};
	bpf_map_update_elem(&oisp_go_read_args, &key, &args, BPF_ANY);
	return 0;
}

/* Attached to every RET of crypto/tls.(*Conn).Read: RAX = n. */
SEC("uprobe")
int oisp_go_tls_read_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct go_call_key key = {.g = ctx->r14, .pid = pid_tgid >> 32};
	struct go_read_args *args = bpf_map_lookup_elem(&oisp_go_read_args, &key);
	if (!args) {
		count(OISP_CNT_STASH_MISSES, 1);
		return 0;
	}
	struct go_read_args a = *args;
	bpf_map_delete_elem(&oisp_go_read_args, &key);
	long n = (long)ctx->ax;
	if (n <= 0)
		return 0;
	emit_data(pid_tgid, a.conn, a.buf, n, bpf_ktime_get_ns(), OISP_DIR_READ, OISP_SRC_GO);
	return 0;
}

/* crypto/tls.(*Conn).Close: the *Conn may be reused by a later connection once the GC
 * frees it; same lifecycle record as SSL_free. */
SEC("uprobe")
int oisp_go_tls_close(struct pt_regs *ctx)
{
	if (go_stack_will_grow(ctx))
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	__u64 conn = ctx->ax;
	if (!conn)
		return 0;
	struct stream_key key = {.conn_id = conn, .pid = pid, .direction = OISP_DIR_WRITE};
	/* Only connections that carried data are worth a record. */
	int seen = bpf_map_delete_elem(&oisp_stream_offsets, &key) == 0;
	key.direction = OISP_DIR_READ;
	seen |= bpf_map_delete_elem(&oisp_stream_offsets, &key) == 0;
	if (!seen)
		return 0;
	struct oisp_ctl_event ev = {
		.kind = OISP_REC_CONN_CLOSE,
		.pid = pid,
		.tid = (__u32)pid_tgid,
		.ts_ns = bpf_ktime_get_ns(),
		.conn_id = conn,
	};
	emit_ctl(&ev, wakeup_flags());
	return 0;
}

#endif /* OISP_GO_TLS_BPF_H */
