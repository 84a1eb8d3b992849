// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * oisp-sensor kernel side: uprobes on OpenSSL's SSL_read/SSL_write (and _ex) that copy
 * the plaintext into a ring buffer, plus BTF tracepoints for process exec and exit.
 *
 * Built CO-RE against a vmlinux.h generated from this machine's BTF
 * (bpftool btf dump file /sys/kernel/btf/vmlinux format c); no kernel headers needed.
 * Programs are attached by user space (capture/loader.py): the uprobe sections carry
 * no target because the set of OpenSSL copies is only known at run time.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "oisp_records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sized by user space from the CPU count before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} oisp_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OISP_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} oisp_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oisp_config);
} oisp_config SEC(".maps");

/* Processes whose files or plain-HTTP sockets are captured (see the syscall section). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* pid */
	__type(value, __u32); /* OISP_WATCH_* */
} oisp_watch SEC(".maps");

/* Processes seen speaking JSON-RPC on their stdin/stdout pipes (MCP's stdio transport):
 * 1 = capture their stdio, 2 = looked, not JSON-RPC (never looked at again). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} oisp_stdio SEC(".maps");

/* Per-CPU scratch space: the BPF stack is 512 bytes, a chunk is 16 KiB. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oisp_data_event);
} oisp_scratch SEC(".maps");

/* SSL_read data only exists at return: the entry probe stashes the arguments here. */
struct ssl_call_args {
	__u64 ssl;
	__u64 buf;
	__u64 size_ptr; /* size_t *readbytes / *written for the _ex variants, else 0 */
	__u64 ts_ns;	/* entry time */
	__u64 source;	/* enum oisp_data_source, from the entry probe's attach cookie */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ssl_call_args);
} oisp_read_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ssl_call_args);
} oisp_write_args SEC(".maps");

/* Byte offset of each (process, connection, direction) stream, so user space can tell a
 * gap (lost records, truncated calls) from a clean continuation. */
struct stream_key {
	__u64 conn_id;
	__u32 pid;
	__u32 direction;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct stream_key);
	__type(value, __u64);
} oisp_stream_offsets SEC(".maps");

static __always_inline void count(__u32 which, __u64 delta)
{
	__u64 *slot = bpf_map_lookup_elem(&oisp_counters, &which);
	if (slot)
		*slot += delta;
}

static __always_inline struct oisp_config *oisp_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&oisp_config, &zero);
}

static __always_inline int is_self(__u32 pid)
{
	struct oisp_config *cfg = oisp_cfg();
	return cfg && cfg->self_pid == pid;
}

/* Wake the consumer only when enough data waits: a wake-up per record costs the traced
 * program 8-12 us; user space polls with a timeout, so nothing waits for long. */
static __always_inline __u64 wakeup_flags(void)
{
	struct oisp_config *cfg = oisp_cfg();
	__u64 threshold = cfg && cfg->wakeup_bytes ? cfg->wakeup_bytes : 262144;
	if (bpf_ringbuf_query(&oisp_events, BPF_RB_AVAIL_DATA) >= threshold)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

struct chunk_ctx {
	__u64 source;
	__u64 buf;
	__u64 ssl;
	__u64 ts_ns;
	__u64 base_offset;
	__u32 call_len;
	__u32 copy_len;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 direction;
	__u16 flags;
};

static long emit_chunk(__u32 index, void *data)
{
	struct chunk_ctx *c = data;
	__u32 zero = 0;
	__u32 off = index * OISP_CHUNK_MAX;
	if (off >= c->copy_len)
		return 1; /* stop the loop */

	struct oisp_data_event *ev = bpf_map_lookup_elem(&oisp_scratch, &zero);
	if (!ev)
		return 1;

	__u64 n = (__u64)c->copy_len - off;
	if (n > OISP_CHUNK_MAX)
		n = OISP_CHUNK_MAX;

	ev->hdr.kind = OISP_REC_DATA;
	ev->hdr.flags = c->flags;
	ev->hdr.pid = c->pid;
	ev->hdr.tid = c->tid;
	ev->hdr.uid = c->uid;
	ev->hdr.ts_ns = c->ts_ns;
	ev->hdr.conn_id = c->ssl;
	ev->hdr.stream_offset = c->base_offset + off;
	ev->hdr.call_len = c->call_len;
	ev->hdr.direction = c->direction;
	ev->hdr.source = c->source;
	bpf_get_current_comm(&ev->hdr.comm, sizeof(ev->hdr.comm));

	/* The verifier needs n provably within the scratch buffer, checked on the very
	 * register passed to the helper: the barrier stops clang from reusing a copy. */
	barrier_var(n);
	if (n > OISP_CHUNK_MAX)
		return 1;
	if (bpf_probe_read_user(ev->data, n, (const void *)(c->buf + off)) != 0) {
		count(OISP_CNT_READ_ERRORS, 1);
		n = 0; /* still send the header: user space learns of the gap from the offsets */
	}
	ev->hdr.len = n;

	if (bpf_ringbuf_output(&oisp_events, ev, sizeof(ev->hdr) + n, wakeup_flags()) != 0) {
		count(OISP_CNT_LOST_RECORDS, 1);
		count(OISP_CNT_LOST_BYTES, n);
		return 0;
	}
	count(OISP_CNT_DATA_RECORDS, 1);
	count(OISP_CNT_DATA_BYTES, n);
	return 0;
}

static __always_inline void emit_data(__u64 pid_tgid, __u64 ssl, __u64 buf, __u64 len, __u64 ts_ns,
				      __u32 direction, __u64 source)
{
	if (len == 0 || len > 0x7fffffff)
		return;

	struct stream_key key = {.conn_id = ssl, .pid = pid_tgid >> 32, .direction = direction};
	__u64 base = 0;
	__u64 *offset = bpf_map_lookup_elem(&oisp_stream_offsets, &key);
	if (offset)
		base = *offset;
	__u64 next = base + len;
	bpf_map_update_elem(&oisp_stream_offsets, &key, &next, BPF_ANY);

	struct chunk_ctx c = {
		.source = source,
		.buf = buf,
		.ssl = ssl,
		.ts_ns = ts_ns,
		.base_offset = base,
		.call_len = (__u32)len,
		.copy_len = (__u32)len,
		.pid = pid_tgid >> 32,
		.tid = (__u32)pid_tgid,
		.uid = (__u32)bpf_get_current_uid_gid(),
		.direction = direction,
	};
	__u64 max_copy = (__u64)OISP_CHUNK_MAX * OISP_MAX_CHUNKS;
	if (len > max_copy) {
		c.copy_len = max_copy;
		c.flags |= OISP_FLAG_TRUNCATED;
		count(OISP_CNT_TRUNC_BYTES, len - max_copy);
	}
	bpf_loop(OISP_MAX_CHUNKS, emit_chunk, &c, 0);
}

static __always_inline int stash(void *ctx, void *map, __u64 ssl, __u64 buf, __u64 size_ptr)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (is_self(pid_tgid >> 32)) {
		count(OISP_CNT_SELF_SKIPPED, 1);
		return 0;
	}
	struct ssl_call_args args = {
		.ssl = ssl,
		.buf = buf,
		.size_ptr = size_ptr,
		.ts_ns = bpf_ktime_get_ns(),
		.source = bpf_get_attach_cookie(ctx),
	};
	bpf_map_update_elem(map, &pid_tgid, &args, BPF_ANY);
	return 0;
}

/* At return: plain SSL_read/SSL_write return the byte count (<= 0 on failure or retry);
 * the _ex variants return > 0 on success and the byte count through the size pointer. */
static __always_inline int finish(void *map, long ret, __u32 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_call_args *args = bpf_map_lookup_elem(map, &pid_tgid);
	if (!args) {
		if (!is_self(pid_tgid >> 32))
			count(OISP_CNT_STASH_MISSES, 1);
		return 0;
	}
	struct ssl_call_args a = *args;
	bpf_map_delete_elem(map, &pid_tgid);
	/* OpenSSL's functions return int: the upper half of %rax is not part of the value,
	 * and an -1 seen as a 64-bit number is a large positive count. GnuTLS returns ssize_t. */
	if (a.source != OISP_SRC_GNUTLS)
		ret = (int)ret;

	__u64 len = 0;
	if (a.size_ptr) {
		/* SSL_*_ex return 1 on success; OpenSSL's internal implementation (probed
		 * instead of the wrappers when possible) returns > 0. */
		if (ret <= 0)
			return 0;
		if (bpf_probe_read_user(&len, sizeof(len), (const void *)a.size_ptr) != 0) {
			count(OISP_CNT_READ_ERRORS, 1);
			return 0;
		}
	} else {
		if (ret <= 0)
			return 0;
		len = ret;
	}
	/* Writes are stamped when the call started (the request left), reads when the
	 * data arrived (the call returned). */
	__u64 ts = direction == OISP_DIR_WRITE ? a.ts_ns : bpf_ktime_get_ns();
	emit_data(pid_tgid, a.ssl, a.buf, len, ts, direction, a.source);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(oisp_ssl_write_entry, void *ssl, const void *buf, int num)
{
	return stash(ctx, &oisp_write_args, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(oisp_ssl_write_ex_entry, void *ssl, const void *buf, size_t num, size_t *written)
{
	return stash(ctx, &oisp_write_args, (__u64)ssl, (__u64)buf, (__u64)written);
}

SEC("uretprobe")
int BPF_KRETPROBE(oisp_ssl_write_return, long ret)
{
	return finish(&oisp_write_args, ret, OISP_DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(oisp_ssl_read_entry, void *ssl, void *buf, int num)
{
	return stash(ctx, &oisp_read_args, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(oisp_ssl_read_ex_entry, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return stash(ctx, &oisp_read_args, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uretprobe")
int BPF_KRETPROBE(oisp_ssl_read_return, long ret)
{
	return finish(&oisp_read_args, ret, OISP_DIR_READ);
}

static __always_inline void emit_ctl(struct oisp_ctl_event *ev, __u64 flags)
{
	if (bpf_ringbuf_output(&oisp_events, ev, sizeof(*ev), flags) != 0)
		count(OISP_CNT_CTL_LOST, 1);
}

/* SSL_free: the SSL* address is about to be reused by a later connection. */
SEC("uprobe")
int BPF_KPROBE(oisp_ssl_free, void *ssl)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	if (!ssl || is_self(pid))
		return 0;
	struct stream_key key = {.conn_id = (__u64)ssl, .pid = pid, .direction = OISP_DIR_WRITE};
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
		.conn_id = (__u64)ssl,
	};
	emit_ctl(&ev, wakeup_flags());
	return 0;
}

/* ---- paths from dentries ------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[OISP_PATH_MAX * 2]);
} oisp_path_scratch SEC(".maps");

#define OISP_PATH_DEPTH 40

/* The absolute path of (dentry, mount) as the process sees it (up to the root of its mount
 * namespace), built right to left in a per-CPU buffer that ends at OISP_PATH_MAX. Returns
 * the offset of the path's first byte, or -1 when the path does not fit. */
static __always_inline long build_path(struct dentry *d, struct vfsmount *vfsmnt, char **out)
{
	__u32 zero = 0;
	char *buf = bpf_map_lookup_elem(&oisp_path_scratch, &zero);
	if (!buf || !d || !vfsmnt)
		return -1;
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	__u64 off = OISP_PATH_MAX;
	buf[OISP_PATH_MAX] = 0;
	for (int i = 0; i < OISP_PATH_DEPTH; i++) {
		struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == root || d == parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (d != root || up == mnt) {
				*out = buf;
				if (off == OISP_PATH_MAX) { /* the root itself */
					buf[OISP_PATH_MAX - 1] = '/';
					return OISP_PATH_MAX - 1;
				}
				return off;
			}
			d = BPF_CORE_READ(mnt, mnt_mountpoint); /* cross to the parent mount */
			mnt = up;
			continue;
		}
		__u64 len = BPF_CORE_READ(d, d_name.len);
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		if (len == 0 || len + 1 > off)
			return -1;
		off -= len;
		barrier_var(off);
		if (off >= OISP_PATH_MAX)
			return -1;
		len &= OISP_PATH_MAX - 1;
		bpf_probe_read_kernel(&buf[off], len, name);
		off -= 1;
		barrier_var(off);
		if (off >= OISP_PATH_MAX)
			return -1;
		buf[off] = '/';
		d = parent;
	}
	return -1; /* deeper than OISP_PATH_DEPTH */
}

/* Copy a built path into dst (OISP_PATH_MAX bytes, NUL-terminated); returns its length. */
static __always_inline long copy_path(char *dst, struct dentry *d, struct vfsmount *mnt)
{
	char *buf = 0;
	long off = build_path(d, mnt, &buf);
	if (off < 0 || !buf)
		return -1;
	__u64 n = OISP_PATH_MAX - off;
	barrier_var(n);
	if (n == 0 || n >= OISP_PATH_MAX)
		return -1;
	__u64 start = off & (OISP_PATH_MAX - 1);
	bpf_probe_read_kernel(dst, n, &buf[start]);
	dst[n & (OISP_PATH_MAX - 1)] = 0;
	return n;
}

/* Per-CPU scratch for exec records (arguments up to 4 KiB do not fit the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oisp_exec_event);
} oisp_exec_scratch SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(oisp_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct oisp_exec_event *ev = bpf_map_lookup_elem(&oisp_exec_scratch, &zero);
	if (!ev)
		return 0;
	__u64 uid_gid = bpf_get_current_uid_gid();
	ev->hdr.kind = OISP_REC_PROC_EXEC;
	ev->hdr.flags = 0;
	ev->hdr.pid = BPF_CORE_READ(p, tgid);
	ev->hdr.tid = BPF_CORE_READ(p, pid);
	ev->hdr.ppid = BPF_CORE_READ(p, real_parent, tgid);
	ev->hdr.uid = (__u32)uid_gid;
	ev->hdr.gid = uid_gid >> 32;
	ev->hdr.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(&ev->hdr.comm, sizeof(ev->hdr.comm));

	/* The new image's argument block: NUL-separated strings in user memory. */
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 arg_start = BPF_CORE_READ(mm, arg_start);
	__u64 arg_end = BPF_CORE_READ(mm, arg_end);
	__u64 args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (args_len > OISP_ARGS_MAX) {
		args_len = OISP_ARGS_MAX;
		ev->hdr.flags |= OISP_FLAG_TRUNCATED;
	}
	barrier_var(args_len);
	if (args_len > OISP_ARGS_MAX)
		return 0;
	if (args_len && bpf_probe_read_user(ev->buf, args_len, (const void *)arg_start) != 0)
		args_len = 0;
	ev->hdr.args_len = args_len;

	/* interp, not filename: for a script (#!) the image that runs is its interpreter,
	 * which is what /proc/PID/exe shows; for a binary the two are the same. */
	long name_len = bpf_probe_read_kernel_str(&ev->buf[args_len], OISP_FILENAME_MAX,
						  BPF_CORE_READ(bprm, interp));
	if (name_len < 1)
		name_len = 1;
	ev->hdr.filename_len = name_len - 1; /* without the NUL */

	/* The working directory, now: a command that lives a millisecond is gone before user
	 * space could read /proc/PID/cwd. */
	__u64 off = args_len + (name_len - 1);
	ev->hdr.cwd_len = 0;
	ev->hdr.env_len = 0;
	barrier_var(off);
	if (off > OISP_ARGS_MAX + OISP_FILENAME_MAX)
		return 0;
	struct path *pwd = __builtin_preserve_access_index(&p->fs->pwd);
	struct dentry *cwd_dentry = BPF_CORE_READ(pwd, dentry);
	struct vfsmount *cwd_mnt = BPF_CORE_READ(pwd, mnt);
	long cwd_len = copy_path((char *)&ev->buf[off], cwd_dentry, cwd_mnt);
	if (cwd_len > 0 && cwd_len < OISP_PATH_MAX) {
		ev->hdr.cwd_len = cwd_len;
		ev->hdr.flags |= OISP_FLAG_PATH_RESOLVED;
		off += cwd_len;
	}

	struct oisp_config *cfg = oisp_cfg();
	if (cfg && cfg->exec_env) {
		__u64 env_start = BPF_CORE_READ(mm, env_start);
		__u64 env_end = BPF_CORE_READ(mm, env_end);
		__u64 env_len = env_end > env_start ? env_end - env_start : 0;
		if (env_len > OISP_ENV_MAX)
			env_len = OISP_ENV_MAX; /* cut mid-variable: user space drops the partial one */
		barrier_var(off);
		barrier_var(env_len);
		if (off <= OISP_ARGS_MAX + OISP_FILENAME_MAX + OISP_PATH_MAX && env_len <= OISP_ENV_MAX &&
		    env_len && bpf_probe_read_user(&ev->buf[off], env_len, (const void *)env_start) == 0) {
			ev->hdr.env_len = env_len;
			off += env_len;
		}
	}

	__u64 size = sizeof(ev->hdr) + off;
	barrier_var(size);
	if (size > sizeof(*ev))
		return 0;
	/* No forced wake-up: the record itself carries what short-lived commands would take
	 * with them (path, arguments, ids); waking the consumer on every exec costs a build
	 * workload dearly. */
	if (bpf_ringbuf_output(&oisp_events, ev, size, wakeup_flags()) != 0)
		count(OISP_CNT_EVENTS_LOST, 1);
	return 0;
}

static __always_inline __u32 watch_bits(__u32 pid)
{
	__u32 *bits = bpf_map_lookup_elem(&oisp_watch, &pid);
	return bits ? *bits : 0;
}

static __always_inline void forget_watched(__u32 pid);

SEC("tp_btf/sched_process_fork")
int BPF_PROG(oisp_process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct oisp_config *cfg = oisp_cfg();
	if (!cfg)
		return 0;
	__u32 tgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != tgid)
		return 0; /* a new thread, not a new process */
	__u32 ppid = BPF_CORE_READ(parent, tgid);
	/* The tools an AI process runs are watched like it: file events follow descendants. */
	__u32 inherited = watch_bits(ppid) & OISP_WATCH_FILES;
	if (inherited)
		bpf_map_update_elem(&oisp_watch, &tgid, &inherited, BPF_ANY);
	if (!cfg->process_events)
		return 0;
	struct oisp_ctl_event ev = {
		.kind = OISP_REC_PROC_FORK,
		.pid = tgid,
		.tid = tgid,
		.ppid = ppid,
		.ts_ns = bpf_ktime_get_ns(),
	};
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	if (bpf_ringbuf_output(&oisp_events, &ev, sizeof(ev), wakeup_flags()) != 0)
		count(OISP_CNT_EVENTS_LOST, 1);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(oisp_process_exit, struct task_struct *p, bool group_dead)
{
	if (!group_dead)
		return 0; /* other threads of the process live on */
	__u32 tgid = BPF_CORE_READ(p, tgid);
	forget_watched(tgid);
	bpf_map_delete_elem(&oisp_stdio, &tgid);
	struct oisp_ctl_event ev = {
		.kind = OISP_REC_PROC_EXIT,
		.pid = tgid,
		.tid = BPF_CORE_READ(p, pid),
		.ts_ns = bpf_ktime_get_ns(),
		.exit_code = BPF_CORE_READ(p, signal, group_exit_code) ?: BPF_CORE_READ(p, exit_code),
		.start_ns = BPF_CORE_READ(p, group_leader, start_time),
	};
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	emit_ctl(&ev, wakeup_flags());
	return 0;
}

/* Outgoing TCP connections. The move to SYN_SENT happens inside connect(), in the
 * caller's context (pid known, ports maybe not yet); the move out of SYN_SENT happens in
 * softirq context (4-tuple known, pid not): remember the first, report at the second. */
struct connect_start {
	__u64 ts_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	char comm[OISP_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct connect_start);
} oisp_connecting SEC(".maps");

/* Established outgoing connections whose first send has not been seen yet (sock -> pid). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, __u32);
} oisp_first_send SEC(".maps");

#define OISP_TCP_ESTABLISHED 1
#define OISP_TCP_SYN_SENT 2
#define OISP_TCP_CLOSE 7

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(oisp_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;
	if (newstate == OISP_TCP_SYN_SENT) {
		struct oisp_config *cfg = oisp_cfg();
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		if (!cfg || !cfg->network_events || cfg->self_pid == pid_tgid >> 32)
			return 0;
		struct connect_start start = {
			.ts_ns = bpf_ktime_get_ns(),
			.pid = pid_tgid >> 32,
			.tid = (__u32)pid_tgid,
			.uid = (__u32)bpf_get_current_uid_gid(),
		};
		bpf_get_current_comm(&start.comm, sizeof(start.comm));
		bpf_map_update_elem(&oisp_connecting, &key, &start, BPF_ANY);
		return 0;
	}
	if (oldstate != OISP_TCP_SYN_SENT)
		return 0;
	struct connect_start *start = bpf_map_lookup_elem(&oisp_connecting, &key);
	if (!start)
		return 0;
	struct oisp_net_event ev = {
		.kind = OISP_REC_NET_CONNECT,
		.pid = start->pid,
		.tid = start->tid,
		.uid = start->uid,
		.ts_ns = start->ts_ns,
		.done_ns = bpf_ktime_get_ns(),
		.success = newstate == OISP_TCP_ESTABLISHED,
	};
	__builtin_memcpy(ev.comm, start->comm, sizeof(ev.comm));
	ev.sock = key;
	bpf_map_delete_elem(&oisp_connecting, &key);
	if (ev.success) { /* its first send (seen by sys_enter) will name the remote host */
		bpf_map_update_elem(&oisp_first_send, &key, &ev.pid, BPF_ANY);
		__u32 bits = watch_bits(ev.pid) | OISP_WATCH_FIRST_SEND;
		bpf_map_update_elem(&oisp_watch, &ev.pid, &bits, BPF_ANY);
	}
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev.family = family;
	ev.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == 2 /* AF_INET */) {
		BPF_CORE_READ_INTO(&ev.saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&ev.daddr, sk, __sk_common.skc_daddr);
	} else if (family == 10 /* AF_INET6 */) {
		BPF_CORE_READ_INTO(&ev.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev.daddr, sk, __sk_common.skc_v6_daddr);
	}
	if (bpf_ringbuf_output(&oisp_events, &ev, sizeof(ev), wakeup_flags()) != 0)
		count(OISP_CNT_EVENTS_LOST, 1);
	return 0;
}

/* ---- syscalls: file events of watched processes, plain-HTTP sockets ----------------
 *
 * One pair of raw syscall tracepoints serves both. Every syscall on the host passes
 * through them, so the common path is a switch on the syscall number and, only for the
 * few calls that matter, one lookup in oisp_watch (pid -> bits). File events are for
 * watched processes (AI processes and their descendants, filled by user space and fork)
 * or everyone; sockets only for connect() calls to the ports in oisp_http_ports. */

/* x86_64 syscall numbers. */
#define NR_read 0
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_connect 42
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_creat 85
#define NR_openat 257
#define NR_preadv 295
#define NR_pwritev 296
#define NR_openat2 437
#define NR_dup 32
#define NR_dup2 33
#define NR_dup3 292
#define NR_fcntl 72
#define NR_sendfile 40
#define NR_copy_file_range 326
#define OISP_S_IFMT 0170000
#define OISP_S_IFREG 0100000
#define OISP_F_DUPFD 0
#define OISP_F_DUPFD_CLOEXEC 1030

#define OISP_EINPROGRESS 115
#define OISP_AT_FDCWD -100
#define OISP_IOV_MAX 8 /* iovecs of one readv/writev/sendmsg/recvmsg copied */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);  /* remote TCP port, host byte order */
	__type(value, __u8);
} oisp_http_ports SEC(".maps");

struct fd_key {
	__u32 pid;
	__s32 fd;
};

struct file_stats {
	__u64 open_ts_ns;
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;
	__u32 writes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fd_key);
	__type(value, struct file_stats);
} oisp_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fd_key);
	__type(value, __u64); /* connection id: unique per connect(), never an SSL* address */
} oisp_sockets SEC(".maps");

enum sys_target {
	SYS_FILE = 1,
	SYS_SOCKET = 2,
	SYS_CONNECT = 3,
	SYS_OPEN = 4,
	SYS_DUP = 5,	   /* a copy of a tracked descriptor */
	SYS_DUP_CLEAR = 6, /* dup2/dup3 over a tracked descriptor: it is closed */
	SYS_ADOPT = 7,	   /* an inherited regular file, seen at first use */
	SYS_COPY = 8,	   /* sendfile/copy_file_range: fd reads, arg writes */
	SYS_STDIO = 9,	   /* stdin read / stdout write of a JSON-RPC stdio server */
	SYS_STDIO_SNIFF = 10, /* stdin read of a process not yet known: look at what it got */
};

#define OISP_STDIO_YES 1
#define OISP_STDIO_NO 2

/* Is `fd` of the current process a pipe (or FIFO)? */
static __always_inline int fd_is_pipe(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd & 0xff]) != 0 || !file)
		return 0;
	__u16 mode = BPF_CORE_READ(file, f_inode, i_mode);
	return (mode & 0170000) == 0010000; /* S_IFIFO */
}

/* Does a JSON-RPC message start here? MCP's stdio transport writes one JSON object per
 * line; every message starts with one of these keys (whatever order the SDK uses). */
static __always_inline int looks_jsonrpc(__u64 buf, __u64 len)
{
	char b[10] = {};
	if (len < 10 || bpf_probe_read_user(b, sizeof(b), (const void *)buf) != 0)
		return 0;
	if (b[0] != '{' || b[1] != '"')
		return 0;
	if (b[2] == 'j' && b[3] == 's' && b[4] == 'o' && b[5] == 'n' && b[6] == 'r' && b[7] == 'p' && b[8] == 'c')
		return 1; /* {"jsonrpc" */
	if (b[2] == 'm' && b[3] == 'e' && b[4] == 't' && b[5] == 'h' && b[6] == 'o' && b[7] == 'd' && b[8] == '"')
		return 1; /* {"method" */
	if (b[2] == 'i' && b[3] == 'd' && b[4] == '"')
		return 1; /* {"id" */
	if (b[2] == 'r' && b[3] == 'e' && b[4] == 's' && b[5] == 'u' && b[6] == 'l' && b[7] == 't' && b[8] == '"')
		return 1; /* {"result" */
	return 0;
}

static __always_inline __u64 stdio_conn_id(__u32 pid)
{
	return (3ULL << 62) | pid; /* never an SSL* nor a socket connection id */
}

/* What sys_enter keeps for sys_exit, per thread. */
struct sys_call {
	__u64 nr;
	__u64 target; /* enum sys_target */
	__u64 fd;
	__u64 buf;    /* buffer, iovec array, msghdr, path or sockaddr */
	__u64 arg;    /* iovec count, open flags */
	__u64 mode;
	__u64 conn_id;
	__u64 ts_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct sys_call);
} oisp_sys_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oisp_file_open_event);
} oisp_open_scratch SEC(".maps");

static __always_inline int files_wanted(struct oisp_config *cfg, __u32 bits)
{
	return cfg->file_mode == OISP_FILES_ALL || (cfg->file_mode == OISP_FILES_WATCHED && (bits & OISP_WATCH_FILES));
}

/* connect(fd, addr, len): only TCP-ish address families to a port of interest. */
static __always_inline int connect_port_wanted(__u64 addr)
{
	__u16 family = 0, port = 0;
	if (!addr || bpf_probe_read_user(&family, sizeof(family), (const void *)addr) != 0)
		return 0;
	if (family != 2 /* AF_INET */ && family != 10 /* AF_INET6 */)
		return 0;
	if (bpf_probe_read_user(&port, sizeof(port), (const void *)(addr + 2)) != 0)
		return 0;
	port = bpf_ntohs(port);
	return bpf_map_lookup_elem(&oisp_http_ports, &port) != NULL;
}

static __always_inline void emit_file_close(__u64 pid_tgid, __s32 fd, struct file_stats *st, __u16 flags)
{
	struct oisp_file_close_event ev = {
		.kind = OISP_REC_FILE_CLOSE,
		.flags = flags,
		.pid = pid_tgid >> 32,
		.tid = (__u32)pid_tgid,
		.fd = fd,
		.ts_ns = bpf_ktime_get_ns(),
		.open_ts_ns = st->open_ts_ns,
		.bytes_read = st->bytes_read,
		.bytes_written = st->bytes_written,
		.reads = st->reads,
		.writes = st->writes,
	};
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	if (bpf_ringbuf_output(&oisp_events, &ev, sizeof(ev), wakeup_flags()) != 0)
		count(OISP_CNT_FILES_LOST, 1);
}

static __always_inline void socket_closed(__u64 pid_tgid, struct fd_key *key, __u64 conn_id)
{
	bpf_map_delete_elem(&oisp_sockets, key);
	struct stream_key skey = {.conn_id = conn_id, .pid = key->pid, .direction = OISP_DIR_WRITE};
	bpf_map_delete_elem(&oisp_stream_offsets, &skey);
	skey.direction = OISP_DIR_READ;
	bpf_map_delete_elem(&oisp_stream_offsets, &skey);
	struct oisp_ctl_event ev = {
		.kind = OISP_REC_CONN_CLOSE,
		.pid = key->pid,
		.tid = (__u32)pid_tgid,
		.ts_ns = bpf_ktime_get_ns(),
		.conn_id = conn_id,
	};
	emit_ctl(&ev, wakeup_flags());
}

/* close(fd) is handled at entry: the descriptor is gone whatever close returns. */
static __always_inline void on_close(__u64 pid_tgid, __s32 fd)
{
	struct fd_key key = {.pid = pid_tgid >> 32, .fd = fd};
	__u64 *conn = bpf_map_lookup_elem(&oisp_sockets, &key);
	if (conn) {
		socket_closed(pid_tgid, &key, *conn);
		return;
	}
	struct file_stats *st = bpf_map_lookup_elem(&oisp_files, &key);
	if (st) {
		struct file_stats copy = *st;
		bpf_map_delete_elem(&oisp_files, &key);
		emit_file_close(pid_tgid, fd, &copy, 0);
	}
}

static long drop_socket_of(struct bpf_map *map, struct fd_key *key, __u64 *conn_id, __u32 *pid)
{
	if (key->pid == *pid)
		bpf_map_delete_elem(map, key);
	return 0;
}

/* Process exit: its descriptors close without close() calls. Sockets are forgotten here
 * (user space ends their conversations at the exit record); open files are looked up and
 * reported by user space, which knows their fds from the open records. */
static __always_inline void forget_watched(__u32 pid)
{
	__u32 bits = watch_bits(pid);
	if (!bits)
		return;
	bpf_map_delete_elem(&oisp_watch, &pid);
	if (bits & OISP_WATCH_SOCKETS)
		bpf_for_each_map_elem(&oisp_sockets, drop_socket_of, &pid, 0);
}

static __always_inline int is_read_nr(__u64 nr)
{
	return nr == NR_read || nr == NR_pread64 || nr == NR_readv || nr == NR_preadv || nr == NR_recvfrom ||
	       nr == NR_recvmsg;
}

static __always_inline int is_iov_nr(__u64 nr)
{
	return nr == NR_readv || nr == NR_writev || nr == NR_preadv || nr == NR_pwritev || nr == NR_sendmsg ||
	       nr == NR_recvmsg;
}

static __always_inline void on_open_done(__u64 pid_tgid, struct sys_call *call, long ret)
{
	struct fd_key key = {.pid = pid_tgid >> 32, .fd = (__s32)ret};
	struct file_stats fresh = {.open_ts_ns = call->ts_ns};
	struct file_stats *stale = bpf_map_lookup_elem(&oisp_files, &key);
	if (stale) { /* the fd was closed in a way we did not see (dup2, close_range) */
		struct file_stats copy = *stale;
		emit_file_close(pid_tgid, key.fd, &copy, OISP_FLAG_FD_REUSED);
	}
	if (bpf_map_update_elem(&oisp_files, &key, &fresh, BPF_ANY) != 0) {
		count(OISP_CNT_FILES_LOST, 1);
		return;
	}
	__u32 zero = 0;
	struct oisp_file_open_event *ev = bpf_map_lookup_elem(&oisp_open_scratch, &zero);
	if (!ev)
		return;
	ev->kind = OISP_REC_FILE_OPEN;
	ev->flags = 0;
	ev->pid = key.pid;
	ev->tid = (__u32)pid_tgid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->ts_ns = call->ts_ns;
	ev->fd = key.fd;
	ev->dirfd = (__s32)call->fd;
	ev->open_flags = (__u32)call->arg;
	ev->mode = (__u32)call->mode;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	if (call->target == SYS_DUP)
		ev->flags |= OISP_FLAG_DUP;
	else if (call->target == SYS_ADOPT)
		ev->flags |= OISP_FLAG_INHERITED;
	/* The file's own path from the kernel: absolute, with `..`, symlinks and the dirfd of
	 * openat resolved. The path as passed is the fallback. */
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = 0;
	long n = -1;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[key.fd & 0xfffff]) == 0 && file)
		n = copy_path(ev->path, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt));
	if (n > 0) {
		ev->flags |= OISP_FLAG_PATH_RESOLVED;
		ev->path_len = n;
	} else {
		n = call->buf ? bpf_probe_read_user_str(ev->path, sizeof(ev->path), (const void *)call->buf) : 0;
		if (n < 1)
			n = 1;
		if (n == sizeof(ev->path))
			ev->flags |= OISP_FLAG_TRUNCATED;
		ev->path_len = n - 1;
	}
	if (bpf_ringbuf_output(&oisp_events, ev, sizeof(*ev), wakeup_flags()) != 0)
		count(OISP_CNT_FILES_LOST, 1);
}

/* Is (pid, fd) in the open-file table? A watched process's regular file that is not (one
 * it inherited already open, like `cmd > out.txt` from a shell) is adopted at first use. */
static __always_inline int file_tracked(__u64 pid_tgid, __u32 bits, __s32 fd)
{
	struct fd_key key = {.pid = pid_tgid >> 32, .fd = fd};
	if (bpf_map_lookup_elem(&oisp_files, &key))
		return 1;
	if (!(bits & OISP_WATCH_FILES) || fd < 0)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd & 0xfffff]) != 0 || !file)
		return 0;
	__u16 mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & OISP_S_IFMT) != OISP_S_IFREG)
		return 0; /* pipes, ttys, sockets: not files */
	struct sys_call adopt = {
		.target = SYS_ADOPT,
		.fd = (__u64)-1,
		.arg = BPF_CORE_READ(file, f_flags),
		.ts_ns = bpf_ktime_get_ns(),
	};
	on_open_done(pid_tgid, &adopt, fd);
	return 1;
}

static __always_inline void on_connect_done(__u64 pid_tgid, struct sys_call *call)
{
	__u32 pid = pid_tgid >> 32;
	struct fd_key key = {.pid = pid, .fd = (__s32)call->fd};
	__u64 *old = bpf_map_lookup_elem(&oisp_sockets, &key);
	if (old) /* a socket fd closed in a way we did not see: end its conversation first */
		socket_closed(pid_tgid, &key, *old);
	/* Top bit set: never equal to an SSL* (a user-space address), unique per connect. */
	__u64 conn_id = (1ULL << 63) | call->ts_ns;
	if (bpf_map_update_elem(&oisp_sockets, &key, &conn_id, BPF_ANY) != 0) {
		count(OISP_CNT_SOCKETS_FULL, 1);
		return;
	}
	__u32 bits = watch_bits(pid) | OISP_WATCH_SOCKETS;
	bpf_map_update_elem(&oisp_watch, &pid, &bits, BPF_ANY);
}

/* The kernel socket behind a descriptor of the current process, or 0. */
static __always_inline __u64 fd_sock(__s32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd & 0xfffff]) != 0 || !file)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & OISP_S_IFMT) != 0140000 /* S_IFSOCK */)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	return (__u64)BPF_CORE_READ(sock, sk);
}

/* write/sendto/writev/sendmsg of a process with connections whose first send is
 * awaited: if this is one, copy its first bytes (TLS ClientHello or HTTP request line and
 * headers), which name the remote host for network.connect. */
static __always_inline void first_send(__u32 pid, long id, struct pt_regs *regs)
{
	__u64 sk = fd_sock((__s32)regs->di);
	if (!sk || !bpf_map_lookup_elem(&oisp_first_send, &sk))
		return;
	bpf_map_delete_elem(&oisp_first_send, &sk);
	__u64 buf = regs->si, len = regs->dx;
	if (id == NR_writev || id == NR_sendmsg) {
		__u64 iov = regs->si; /* writev(fd, iov, n); sendmsg: struct msghdr, msg_iov at 16 */
		if (id == NR_sendmsg && bpf_probe_read_user(&iov, sizeof(iov), (const void *)(regs->si + 16)) != 0)
			return;
		__u64 seg[2] = {};
		if (bpf_probe_read_user(seg, sizeof(seg), (const void *)iov) != 0)
			return;
		buf = seg[0];
		len = seg[1];
	}
	struct oisp_first_send_event *ev = bpf_ringbuf_reserve(&oisp_events, sizeof(*ev), 0);
	if (!ev) {
		count(OISP_CNT_EVENTS_LOST, 1);
		return;
	}
	__u32 n = len > OISP_FIRST_SEND_MAX ? OISP_FIRST_SEND_MAX : len;
	ev->kind = OISP_REC_NET_FIRST_SEND;
	ev->pid = pid;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->sock = sk;
	if (n > OISP_FIRST_SEND_MAX || bpf_probe_read_user(ev->data, n, (const void *)buf) != 0)
		n = 0;
	ev->len = n;
	bpf_ringbuf_submit(ev, wakeup_flags());
}

struct iov_ctx {
	__u64 pid_tgid;
	__u64 conn_id;
	__u64 iov;
	__u64 left;
	__u64 ts_ns;
	__u32 direction;
};

static long emit_iov(__u32 index, void *data)
{
	struct iov_ctx *c = data;
	if (!c->left)
		return 1;
	__u64 seg[2] = {};
	if (bpf_probe_read_user(seg, sizeof(seg), (const void *)(c->iov + index * 16)) != 0)
		return 1;
	__u64 n = seg[1] < c->left ? seg[1] : c->left;
	emit_data(c->pid_tgid, c->conn_id, seg[0], n, c->ts_ns, c->direction, OISP_SRC_SOCKET);
	c->left -= n;
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(oisp_sys_enter, struct pt_regs *regs, long id)
{
	switch (id) {
	case NR_read: case NR_write: case NR_pread64: case NR_pwrite64: case NR_readv: case NR_writev:
	case NR_preadv: case NR_pwritev: case NR_sendto: case NR_recvfrom: case NR_sendmsg: case NR_recvmsg:
	case NR_close: case NR_connect: case NR_open: case NR_openat: case NR_creat: case NR_openat2:
	case NR_dup: case NR_dup2: case NR_dup3: case NR_fcntl: case NR_sendfile: case NR_copy_file_range:
		break;
	default:
		return 0;
	}
	if (id == NR_fcntl && regs->si != OISP_F_DUPFD && regs->si != OISP_F_DUPFD_CLOEXEC)
		return 0;
	struct oisp_config *cfg = oisp_cfg();
	if (!cfg)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	if (cfg->self_pid == pid)
		return 0;
	struct sys_call call = {.nr = id, .fd = regs->di, .buf = regs->si, .arg = regs->dx};

	/* Pipe reads and writes on low descriptors: a JSON-RPC stdio server (MCP), which
	 * may have moved its stdin/stdout (Python's mcp server reads a dup of fd 0). A process
	 * is judged once, by the first bytes of its first pipe I/O. */
	if (cfg->stdio_capture && (id == NR_read || id == NR_write) && regs->di < 16) {
		__u8 *state = bpf_map_lookup_elem(&oisp_stdio, &pid);
		if (state && *state == OISP_STDIO_YES) {
			if (fd_is_pipe(regs->di))
				call.target = SYS_STDIO;
		} else if (!state && fd_is_pipe(regs->di)) {
			if (id == NR_write) {
				__u8 verdict = looks_jsonrpc(regs->si, regs->dx) ? OISP_STDIO_YES : OISP_STDIO_NO;
				bpf_map_update_elem(&oisp_stdio, &pid, &verdict, BPF_ANY);
				if (verdict == OISP_STDIO_YES)
					call.target = SYS_STDIO;
			} else {
				call.target = SYS_STDIO_SNIFF;
			}
		}
		if (call.target) {
			call.conn_id = stdio_conn_id(pid);
			call.ts_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&oisp_sys_calls, &pid_tgid, &call, BPF_ANY);
			return 0;
		}
	}

	if (id == NR_connect) {
		if (!cfg->socket_capture || !connect_port_wanted(regs->si))
			return 0;
		call.target = SYS_CONNECT;
	} else if (id == NR_open || id == NR_openat || id == NR_creat || id == NR_openat2) {
		if (cfg->file_mode == OISP_FILES_OFF)
			return 0;
		if (!files_wanted(cfg, watch_bits(pid)))
			return 0;
		call.target = SYS_OPEN;
		if (id == NR_open) { /* open(path, flags, mode) */
			call.fd = (__u64)(__s64)OISP_AT_FDCWD;
			call.buf = regs->di;
			call.arg = regs->si;
			call.mode = regs->dx;
		} else if (id == NR_creat) { /* creat(path, mode) = O_CREAT|O_WRONLY|O_TRUNC */
			call.fd = (__u64)(__s64)OISP_AT_FDCWD;
			call.buf = regs->di;
			call.arg = 01 | 0100 | 01000;
			call.mode = regs->si;
		} else if (id == NR_openat2) { /* openat2(dirfd, path, struct open_how *how, size) */
			__u64 how[2] = {};
			bpf_probe_read_user(how, sizeof(how), (const void *)regs->dx);
			call.arg = how[0];
			call.mode = how[1];
		} else {
			call.mode = regs->r10;
		}
	} else {
		__u32 bits = watch_bits(pid);
		if (!bits && cfg->file_mode != OISP_FILES_ALL)
			return 0;
		if ((bits & OISP_WATCH_FIRST_SEND) &&
		    (id == NR_write || id == NR_sendto || id == NR_writev || id == NR_sendmsg))
			first_send(pid, id, regs);
		if (id == NR_close) {
			on_close(pid_tgid, (__s32)regs->di);
			return 0;
		}
		struct fd_key key = {.pid = pid, .fd = (__s32)regs->di};
		if (id == NR_sendfile || id == NR_copy_file_range) {
			/* sendfile(out, in, ...), copy_file_range(in, off, out, ...): cat and cp. */
			__s32 in = id == NR_sendfile ? (__s32)regs->si : (__s32)regs->di;
			__s32 out = id == NR_sendfile ? (__s32)regs->di : (__s32)regs->dx;
			int t_in = file_tracked(pid_tgid, bits, in);
			int t_out = file_tracked(pid_tgid, bits, out);
			if (!t_in && !t_out)
				return 0;
			call.target = SYS_COPY;
			call.fd = t_in ? (__u64)(__s64)in : (__u64)-1;
			call.arg = t_out ? (__u64)(__s64)out : (__u64)-1;
			call.ts_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&oisp_sys_calls, &pid_tgid, &call, BPF_ANY);
			return 0;
		}
		if (id == NR_dup || id == NR_dup2 || id == NR_dup3 || id == NR_fcntl) {
			/* A copy of an open file's descriptor (a shell's `> file` is open + dup2):
			 * what goes through the copy is counted under the copy. */
			if (!bpf_map_lookup_elem(&oisp_files, &key)) {
				struct fd_key target = {.pid = pid, .fd = (__s32)regs->si};
				if ((id != NR_dup2 && id != NR_dup3) || !bpf_map_lookup_elem(&oisp_files, &target))
					return 0;
				call.target = SYS_DUP_CLEAR; /* dup2 over a tracked fd closes it */
				call.fd = regs->si;
				call.ts_ns = bpf_ktime_get_ns();
				bpf_map_update_elem(&oisp_sys_calls, &pid_tgid, &call, BPF_ANY);
				return 0;
			}
			call.target = SYS_DUP;
			call.buf = 0;
			call.arg = 0;
			call.ts_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&oisp_sys_calls, &pid_tgid, &call, BPF_ANY);
			return 0;
		}
		__u64 *conn = (bits & OISP_WATCH_SOCKETS) ? bpf_map_lookup_elem(&oisp_sockets, &key) : NULL;
		if (conn) {
			call.target = SYS_SOCKET;
			call.conn_id = *conn;
		} else if (file_tracked(pid_tgid, bits, key.fd)) {
			call.target = SYS_FILE;
		} else {
			return 0;
		}
		if (id == NR_sendmsg || id == NR_recvmsg) { /* struct msghdr: msg_iov at 16, msg_iovlen at 24 */
			__u64 iov[2] = {};
			bpf_probe_read_user(iov, sizeof(iov), (const void *)(regs->si + 16));
			call.buf = iov[0];
			call.arg = iov[1];
		}
	}
	call.ts_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&oisp_sys_calls, &pid_tgid, &call, BPF_ANY);
	return 0;
}

/* A process opened a TLS library (the dynamic loader does so before mapping it, dlopen
 * too): tell user space which file, so it is probed before its first call, with no
 * periodic reading of every process's maps. Checks the opened file's own name. */
static __always_inline void lib_hint(__u64 pid_tgid, long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd & 0xfffff]) != 0 || !file)
		return;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	char name[10] = {};
	bpf_probe_read_kernel(name, 9, BPF_CORE_READ(d, d_name.name));
	int ssl = name[0] == 'l' && name[1] == 'i' && name[2] == 'b' && name[3] == 's' && name[4] == 's' &&
		  name[5] == 'l' && name[6] == '.';
	int gnutls = name[0] == 'l' && name[1] == 'i' && name[2] == 'b' && name[3] == 'g' && name[4] == 'n' &&
		     name[5] == 'u' && name[6] == 't' && name[7] == 'l' && name[8] == 's';
	if (!ssl && !gnutls)
		return;
	__u32 zero = 0;
	struct oisp_file_open_event *ev = bpf_map_lookup_elem(&oisp_open_scratch, &zero);
	if (!ev)
		return;
	ev->kind = OISP_REC_LIB_OPEN;
	ev->flags = 0;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->uid = 0;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->fd = fd;
	ev->dirfd = 0;
	ev->open_flags = 0;
	ev->mode = 0;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	long n = copy_path(ev->path, d, BPF_CORE_READ(file, f_path.mnt));
	if (n <= 0)
		return;
	ev->flags = OISP_FLAG_PATH_RESOLVED;
	ev->path_len = n;
	/* Woken at once: the library's first call may follow within microseconds. */
	if (bpf_ringbuf_output(&oisp_events, ev, sizeof(*ev), BPF_RB_FORCE_WAKEUP) != 0)
		count(OISP_CNT_EVENTS_LOST, 1);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(oisp_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 nr = BPF_CORE_READ(regs, orig_ax);
	switch (nr) {
	case NR_read: case NR_write: case NR_pread64: case NR_pwrite64: case NR_readv: case NR_writev:
	case NR_preadv: case NR_pwritev: case NR_sendto: case NR_recvfrom: case NR_sendmsg: case NR_recvmsg:
	case NR_connect: case NR_open: case NR_openat: case NR_creat: case NR_openat2:
	case NR_dup: case NR_dup2: case NR_dup3: case NR_fcntl: case NR_sendfile: case NR_copy_file_range:
		break;
	default:
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (ret >= 0 && (nr == NR_openat || nr == NR_open || nr == NR_openat2)) {
		struct oisp_config *cfg = oisp_cfg();
		if (cfg && cfg->lib_hints && cfg->self_pid != pid_tgid >> 32)
			lib_hint(pid_tgid, ret);
	}
	struct sys_call *found = bpf_map_lookup_elem(&oisp_sys_calls, &pid_tgid);
	if (!found)
		return 0;
	struct sys_call call = *found;
	bpf_map_delete_elem(&oisp_sys_calls, &pid_tgid);
	if (call.nr != nr)
		return 0;

	if (call.target == SYS_OPEN || call.target == SYS_DUP) {
		if (ret >= 0)
			on_open_done(pid_tgid, &call, ret);
		return 0;
	}
	if (call.target == SYS_DUP_CLEAR) {
		struct fd_key key = {.pid = pid_tgid >> 32, .fd = (__s32)call.fd};
		struct file_stats *st = ret >= 0 ? bpf_map_lookup_elem(&oisp_files, &key) : NULL;
		if (st) {
			struct file_stats copy = *st;
			bpf_map_delete_elem(&oisp_files, &key);
			emit_file_close(pid_tgid, key.fd, &copy, OISP_FLAG_FD_REUSED);
		}
		return 0;
	}
	if (call.target == SYS_COPY) {
		if (ret <= 0)
			return 0;
		struct fd_key in = {.pid = pid_tgid >> 32, .fd = (__s32)call.fd};
		struct fd_key out = {.pid = pid_tgid >> 32, .fd = (__s32)call.arg};
		struct file_stats *st = bpf_map_lookup_elem(&oisp_files, &in);
		if (st) {
			__sync_fetch_and_add(&st->bytes_read, ret);
			__sync_fetch_and_add(&st->reads, 1);
		}
		st = bpf_map_lookup_elem(&oisp_files, &out);
		if (st) {
			__sync_fetch_and_add(&st->bytes_written, ret);
			__sync_fetch_and_add(&st->writes, 1);
		}
		return 0;
	}
	if (call.target == SYS_CONNECT) {
		if (ret == 0 || ret == -OISP_EINPROGRESS)
			on_connect_done(pid_tgid, &call);
		return 0;
	}
	if (ret <= 0)
		return 0;
	if (call.target == SYS_STDIO_SNIFF) {
		__u32 pid = pid_tgid >> 32;
		__u8 verdict = looks_jsonrpc(call.buf, ret) ? OISP_STDIO_YES : OISP_STDIO_NO;
		bpf_map_update_elem(&oisp_stdio, &pid, &verdict, BPF_ANY);
		if (verdict != OISP_STDIO_YES)
			return 0;
		call.target = SYS_STDIO;
	}
	if (call.target == SYS_STDIO) {
		__u32 direction = nr == NR_read ? OISP_DIR_READ : OISP_DIR_WRITE;
		__u64 ts = direction == OISP_DIR_READ ? bpf_ktime_get_ns() : call.ts_ns;
		emit_data(pid_tgid, call.conn_id, call.buf, ret, ts, direction, OISP_SRC_STDIO);
		return 0;
	}
	int reading = is_read_nr(nr);
	if (call.target == SYS_FILE) {
		struct fd_key key = {.pid = pid_tgid >> 32, .fd = (__s32)call.fd};
		struct file_stats *st = bpf_map_lookup_elem(&oisp_files, &key);
		if (!st)
			return 0;
		if (reading) {
			__sync_fetch_and_add(&st->bytes_read, ret);
			__sync_fetch_and_add(&st->reads, 1);
		} else {
			__sync_fetch_and_add(&st->bytes_written, ret);
			__sync_fetch_and_add(&st->writes, 1);
		}
		return 0;
	}
	/* A plain-HTTP socket: the bytes moved, like a TLS call's plaintext. Writes are stamped
	 * when the call started, reads when the data arrived. */
	__u32 direction = reading ? OISP_DIR_READ : OISP_DIR_WRITE;
	__u64 ts = reading ? bpf_ktime_get_ns() : call.ts_ns;
	if (is_iov_nr(nr)) {
		struct iov_ctx c = {.pid_tgid = pid_tgid, .conn_id = call.conn_id, .iov = call.buf,
				    .left = ret, .ts_ns = ts, .direction = direction};
		__u32 cnt = call.arg < OISP_IOV_MAX ? call.arg : OISP_IOV_MAX;
		bpf_loop(cnt, emit_iov, &c, 0);
		return 0;
	}
	emit_data(pid_tgid, call.conn_id, call.buf, ret, ts, direction, OISP_SRC_SOCKET);
	return 0;
}

/* Name resolution: getaddrinfo(node, service, hints, res). The answers exist only at
 * return, in the addrinfo list *res points to. */
struct dns_args {
	__u64 ts_ns;
	__u64 node;
	__u64 res;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct dns_args);
} oisp_dns_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oisp_dns_event);
} oisp_dns_scratch SEC(".maps");

/* struct addrinfo on 64-bit Linux: ai_family at 4, ai_addr at 24, ai_next at 40. */
#define AI_FAMILY_OFF 4
#define AI_ADDR_OFF 24
#define AI_NEXT_OFF 40

SEC("uprobe")
int BPF_KPROBE(oisp_getaddrinfo_entry, const char *node, const char *service, const void *hints, void **res)
{
	struct oisp_config *cfg = oisp_cfg();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!cfg || !cfg->network_events || cfg->self_pid == pid_tgid >> 32 || !node)
		return 0;
	struct dns_args args = {.ts_ns = bpf_ktime_get_ns(), .node = (__u64)node, .res = (__u64)res};
	bpf_map_update_elem(&oisp_dns_args, &pid_tgid, &args, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(oisp_getaddrinfo_return, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct dns_args *args = bpf_map_lookup_elem(&oisp_dns_args, &pid_tgid);
	if (!args)
		return 0;
	struct dns_args a = *args;
	bpf_map_delete_elem(&oisp_dns_args, &pid_tgid);
	__u32 zero = 0;
	struct oisp_dns_event *ev = bpf_map_lookup_elem(&oisp_dns_scratch, &zero);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = OISP_REC_DNS;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->ret = ret;
	ev->ts_ns = a.ts_ns;
	ev->done_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	bpf_probe_read_user_str(ev->name, sizeof(ev->name), (const void *)a.node);
	__u64 ai = 0;
	if (ret == 0 && a.res)
		bpf_probe_read_user(&ai, sizeof(ai), (const void *)a.res);
	__u32 n = 0;
	for (int i = 0; i < OISP_DNS_ADDRS_MAX && ai; i++) {
		int family = 0;
		__u64 sa = 0;
		bpf_probe_read_user(&family, sizeof(family), (const void *)(ai + AI_FAMILY_OFF));
		bpf_probe_read_user(&sa, sizeof(sa), (const void *)(ai + AI_ADDR_OFF));
		if (sa && (family == 2 || family == 10) && n < OISP_DNS_ADDRS_MAX) {
			ev->families[n] = family;
			if (family == 2) /* sockaddr_in: sin_addr at 4 */
				bpf_probe_read_user(ev->addrs[n], 4, (const void *)(sa + 4));
			else /* sockaddr_in6: sin6_addr at 8 */
				bpf_probe_read_user(ev->addrs[n], 16, (const void *)(sa + 8));
			n++;
		}
		if (bpf_probe_read_user(&ai, sizeof(ai), (const void *)(ai + AI_NEXT_OFF)) != 0)
			break;
	}
	ev->count = n;
	if (bpf_ringbuf_output(&oisp_events, ev, sizeof(*ev), wakeup_flags()) != 0)
		count(OISP_CNT_EVENTS_LOST, 1);
	return 0;
}

#include "oisp_go_tls.bpf.h"
