/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one header that defines what the kernel side hands to user space.
 *
 * Every struct here has a ctypes mirror in src/oisp_sensor/capture/layout.py and a
 * test (tests/unit/test_layout.py) compiles this header and checks that sizes and
 * offsets match, so the two can never drift apart silently.
 *
 * All records start with the same 8-byte prefix (kind + flags + pid) so user space
 * can dispatch on `kind` before it knows the record's type.
 */
#ifndef OISP_RECORDS_H
#define OISP_RECORDS_H

/* Payload bytes copied per data record. A per-CPU scratch value of 32 KiB or more
 * fails with E2BIG, so larger TLS calls are split into several records. */
#define OISP_CHUNK_MAX 16384
/* How many chunks one TLS call may produce: calls larger than
 * OISP_CHUNK_MAX * OISP_MAX_CHUNKS are cut, and the bytes not copied are counted. */
#define OISP_MAX_CHUNKS 64
#define OISP_COMM_LEN 16

enum oisp_record_kind {
	OISP_REC_DATA = 1,	 /* plaintext of one TLS call (or one chunk of it) */
	OISP_REC_CONN_CLOSE = 2, /* SSL_free: the SSL* may be reused for a new connection */
	OISP_REC_PROC_EXIT = 3,	 /* a thread group leader exited */
	OISP_REC_PROC_EXEC = 4,	 /* execve succeeded (struct oisp_exec_hdr + args + filename) */
	OISP_REC_PROC_FORK = 5,	 /* a new process (not a thread) was created */
	OISP_REC_NET_CONNECT = 6, /* an outgoing TCP connection was established or failed */
	OISP_REC_DNS = 7,	 /* getaddrinfo() returned (struct oisp_dns_event) */
	OISP_REC_FILE_OPEN = 8,	 /* a watched process opened a file (struct oisp_file_open_event) */
	OISP_REC_FILE_CLOSE = 9, /* ... and closed it: bytes read and written (oisp_file_close_event) */
	OISP_REC_LIB_OPEN = 10,	 /* any process opened a file named libssl* or libgnutls* (same
				    layout as oisp_file_open_event): a TLS library to probe */
	OISP_REC_NET_FIRST_SEND = 11, /* the first bytes an outgoing TCP connection sent (a TLS
					 ClientHello with its SNI, or an HTTP request with Host):
					 names the remote host (struct oisp_first_send_event) */
};

enum oisp_direction {
	OISP_DIR_WRITE = 0, /* the process wrote it (SSL_write*) */
	OISP_DIR_READ = 1,  /* the process read it (SSL_read*) */
};

/* Which TLS library a data record came from: the attach cookie of the entry probe. */
enum oisp_data_source {
	OISP_SRC_OPENSSL = 0,
	OISP_SRC_SOCKET = 1,
	OISP_SRC_GNUTLS = 2,
	OISP_SRC_GO = 3, /* Go's crypto/tls */
	OISP_SRC_STDIO = 4, /* stdin reads / stdout writes of a JSON-RPC stdio server (MCP) */
};

/* Record flags. */
#define OISP_FLAG_TRUNCATED 0x1 /* the call was longer than the kernel copies */
#define OISP_FLAG_FD_REUSED 0x2 /* file close: the fd was reused without a close we saw */
#define OISP_FLAG_DUP 0x8	 /* file open: made by dup/dup2/dup3/fcntl(F_DUPFD), dirfd = the old fd */
#define OISP_FLAG_INHERITED 0x20 /* file open: a regular file the process got already open
				    (from its parent, e.g. a shell's `cmd > file`), seen at first use */
#define OISP_FLAG_PATH_RESOLVED 0x10 /* file open: path is the kernel's absolute path of the file;
					 exec: the cwd was resolved */

/* Header of a data record; `len` payload bytes follow it directly in the ring buffer. */
struct oisp_data_hdr {
	__u16 kind;   /* OISP_REC_DATA */
	__u16 flags;  /* OISP_FLAG_* */
	__u32 pid;    /* thread group id */
	__u32 tid;
	__u32 uid;
	__u64 ts_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 conn_id; /* the SSL* address */
	__u64 stream_offset; /* offset of this chunk in the (pid, conn_id, direction) stream */
	__u32 call_len;	/* bytes the whole TLS call moved */
	__u32 len;	/* payload bytes in this record */
	__u8 direction; /* enum oisp_direction */
	__u8 source;	/* enum oisp_data_source */
	__u8 pad[6];
	char comm[OISP_COMM_LEN];
};

/* What the kernel copies into the ring buffer for a data record. */
struct oisp_data_event {
	struct oisp_data_hdr hdr;
	__u8 data[OISP_CHUNK_MAX];
};

/* Non-data records: connection closed, process exited, process exec'd. */
struct oisp_ctl_event {
	__u16 kind;
	__u16 flags;
	__u32 pid;
	__u32 tid;
	__u32 ppid;	/* fork: the parent */
	__u64 ts_ns;
	__u64 conn_id;	/* conn close only */
	__s32 exit_code; /* exit only: the raw wait status (task->exit_code) */
	__u32 pad;
	__u64 start_ns;	/* exit only: when the process started (CLOCK_MONOTONIC) */
	char comm[OISP_COMM_LEN];
};

/* Bytes of the command line and of the executable path an exec record carries. */
#define OISP_ARGS_MAX 4096
#define OISP_FILENAME_MAX 256
/* Paths the kernel builds from dentries (cwd, opened files). */
#define OISP_PATH_MAX 512
/* Bytes of environment an exec record carries when asked to (struct oisp_config.exec_env). */
#define OISP_ENV_MAX 4096

/* Header of an exec record; `args_len` bytes of NUL-separated arguments follow, then
 * `filename_len` bytes of the executable path (no NUL), `cwd_len` bytes of the working
 * directory (no NUL) and `env_len` bytes of NUL-separated environment (opt-in). */
struct oisp_exec_hdr {
	__u16 kind;	/* OISP_REC_PROC_EXEC */
	__u16 flags;	/* OISP_FLAG_TRUNCATED when the arguments were cut */
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u64 ts_ns;
	__u32 args_len;
	__u32 filename_len;
	__u32 cwd_len;
	__u32 env_len;
	char comm[OISP_COMM_LEN];
};

struct oisp_exec_event {
	struct oisp_exec_hdr hdr;
	__u8 buf[OISP_ARGS_MAX + OISP_FILENAME_MAX + OISP_PATH_MAX + OISP_ENV_MAX];
};

/* An outgoing TCP connection: recorded when connect() leaves SYN_SENT. */
struct oisp_net_event {
	__u16 kind;	/* OISP_REC_NET_CONNECT */
	__u16 flags;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u64 ts_ns;	/* when connect() started */
	__u64 done_ns;	/* when it was established or failed */
	__u16 family;	/* AF_INET / AF_INET6 */
	__u16 sport;	/* host byte order */
	__u16 dport;
	__u8 success;	/* 1 established, 0 failed or refused */
	__u8 pad;
	__u8 saddr[16];	/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	char comm[OISP_COMM_LEN];
	__u64 sock;	/* identity of the connection (kernel socket address): pairs the first send */
};

/* How much of a connection's first send is copied: a ClientHello's server_name extension
 * or an HTTP request's Host header are almost always within it. */
#define OISP_FIRST_SEND_MAX 1024

/* The first bytes an established outgoing connection sent; `len` bytes of `data` are valid. */
struct oisp_first_send_event {
	__u16 kind;	/* OISP_REC_NET_FIRST_SEND */
	__u16 len;
	__u32 pid;
	__u64 ts_ns;
	__u64 sock;	/* as in oisp_net_event */
	__u8 data[OISP_FIRST_SEND_MAX];
};

#define OISP_DNS_NAME_MAX 128
#define OISP_DNS_ADDRS_MAX 8

/* A name resolution through libc's getaddrinfo(): the query and up to 8 answers. */
struct oisp_dns_event {
	__u16 kind;	/* OISP_REC_DNS */
	__u16 flags;
	__u32 pid;
	__u32 tid;
	__s32 ret;	/* getaddrinfo's return value: 0 or an EAI_* code */
	__u64 ts_ns;	/* call start */
	__u64 done_ns;	/* call return */
	__u32 count;	/* answers in addrs (IPv4 in the first 4 bytes of a slot) */
	__u16 families[OISP_DNS_ADDRS_MAX];
	__u8 addrs[OISP_DNS_ADDRS_MAX][16];
	char name[OISP_DNS_NAME_MAX];
	char comm[OISP_COMM_LEN];
};

/* openat()/open()/creat()/openat2() succeeded in a watched process. */
struct oisp_file_open_event {
	__u16 kind;	/* OISP_REC_FILE_OPEN */
	__u16 flags;	/* OISP_FLAG_TRUNCATED when the path was cut */
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u64 ts_ns;
	__s32 fd;	/* the file descriptor returned */
	__s32 dirfd;	/* AT_FDCWD (-100) or the directory fd a relative path is relative to */
	__u32 open_flags; /* O_* flags as passed */
	__u32 mode;
	__u32 path_len;	/* bytes of path, without the NUL */
	__u32 pad;
	char comm[OISP_COMM_LEN];
	char path[OISP_PATH_MAX]; /* absolute (OISP_FLAG_PATH_RESOLVED) or as the process passed it */
};

/* close() of a file opened in a watched process: what was read and written through it. */
struct oisp_file_close_event {
	__u16 kind;	/* OISP_REC_FILE_CLOSE */
	__u16 flags;	/* OISP_FLAG_FD_REUSED */
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u64 ts_ns;
	__u64 open_ts_ns;
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;
	__u32 writes;
	char comm[OISP_COMM_LEN];
};

/* File-event scope, in struct oisp_config. */
enum oisp_file_mode {
	OISP_FILES_OFF = 0,
	OISP_FILES_WATCHED = 1, /* processes in oisp_watch with OISP_WATCH_FILES (AI processes + descendants) */
	OISP_FILES_ALL = 2,
};

/* Bits of the oisp_watch map (pid -> bits), which user space and fork fill. */
#define OISP_WATCH_FILES 0x1	/* record this process's files; children inherit it */
#define OISP_WATCH_SOCKETS 0x2	/* this process has a plain-HTTP socket being captured */
#define OISP_WATCH_FIRST_SEND 0x4 /* has connections whose first send is awaited (names the host) */

/* Kernel-side counters, one slot each in a per-CPU array (summed by user space). */
enum oisp_counter {
	OISP_CNT_DATA_RECORDS = 0,   /* data records written to the ring buffer */
	OISP_CNT_DATA_BYTES = 1,     /* payload bytes written */
	OISP_CNT_LOST_RECORDS = 2,   /* records dropped: ring buffer full */
	OISP_CNT_LOST_BYTES = 3,     /* payload bytes in those records */
	OISP_CNT_TRUNC_BYTES = 4,    /* bytes of calls larger than the kernel copies */
	OISP_CNT_READ_ERRORS = 5,    /* bpf_probe_read_user failed (page not present) */
	OISP_CNT_CTL_LOST = 6,	     /* control records dropped: ring buffer full */
	OISP_CNT_STASH_MISSES = 7,   /* a return probe found no entry stash */
	OISP_CNT_SELF_SKIPPED = 8,   /* calls of the sensor's own process, ignored */
	OISP_CNT_EVENTS_LOST = 9,    /* process/network records dropped: ring buffer full */
	OISP_CNT_FILES_LOST = 10,    /* file records dropped: ring full or the open-file table full */
	OISP_CNT_SOCKETS_FULL = 11,  /* plain-HTTP sockets not captured: the socket table is full */
	OISP_CNT__MAX = 12,
};

/* Configuration that user space writes into the `oisp_config` array after load. */
struct oisp_config {
	__u32 self_pid;	  /* never capture this process (the sensor itself) */
	__u32 wakeup_bytes; /* wake the consumer only once this much data is waiting */
	__u32 process_events; /* emit exec/fork records (exit and exec are always needed) */
	__u32 network_events; /* emit connect records */
	__u32 file_mode;      /* enum oisp_file_mode */
	__u32 socket_capture; /* capture plain-HTTP sockets to the ports in oisp_http_ports */
	__u32 exec_env;	      /* exec records carry the environment */
	__u32 lib_hints;      /* report opens of TLS libraries (OISP_REC_LIB_OPEN) */
	__u32 stdio_capture;  /* capture processes that speak JSON-RPC over stdin/stdout pipes */
	__u32 pad;
};

#endif /* OISP_RECORDS_H */
