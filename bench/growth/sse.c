/*
 * Holds many GET /stream connections for the growth section of
 * bench/run.sh (wrk cannot keep a response open), then measures fan-out:
 *
 *   sse PORT PATH N HOT CHANGES PREFIX HOT_USER
 *
 * Opens N streams to 127.0.0.1:PORT PATH: the first HOT as HOT_USER, the
 * others as PREFIX%012d (one owner each). Once every stream has its first
 * event it prints "READY <open> <failed>" and waits for a line on stdin
 * (run.sh measures memory meanwhile). Then, CHANGES times: one add to
 * HOT_USER's cart (POST PATH/../items on its own connection) and the time
 * from sending it until the first and the last of the HOT streams has an
 * event with a newer version: "CHANGE <first_us> <last_us>". At the end
 * "DONE <streams still open>".
 *
 * One thread, epoll, level-triggered; connects at most 1,000 at a time so
 * that the listen queue never overflows.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>


#define SSE_CONNECTING  1000      /* streams waiting for their first event */
#define SSE_LINE        64        /* what we keep of a line: its start */
#define SSE_WAIT_MS     120000    /* for all streams to open */
#define SSE_CHANGE_MS   10000     /* for a change to reach them */


typedef struct {
    int       fd;
    int       lines;              /* lines read so far */
    int       len;
    int       open;               /* 200 and its first event came */
    int       dead;
    int64_t   version;
    char      line[SSE_LINE];
} sse_conn_t;


static sse_conn_t          *conns;
static int                  nconns, nhot, ep, nopen, nfailed, npending;
static struct sockaddr_in   sin_;
static const char          *path, *prefix, *hot_user;


static int64_t
now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static void
fail(sse_conn_t *c)
{
    if (!c->dead) {
        c->dead = 1;
        nfailed++;

        if (c->open) {
            nopen--;

        } else {
            npending--;
        }

        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
}


static void
start(int i)
{
    int                  fd;
    sse_conn_t          *c = &conns[i];
    struct epoll_event   ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        perror("sse: socket");
        exit(1);
    }

    if (connect(fd, (struct sockaddr *) &sin_, sizeof(sin_)) < 0
        && errno != EINPROGRESS)
    {
        perror("sse: connect");
        exit(1);
    }

    c->fd = fd;
    c->version = -1;
    npending++;

    ev.events = EPOLLOUT;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}


/* connected: the request (a few hundred bytes: one write is enough) */
static void
send_request(int i)
{
    int                  n, err;
    char                 req[512];
    socklen_t            len;
    sse_conn_t          *c = &conns[i];
    struct epoll_event   ev;

    err = 0;
    len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

    if (err) {
        fail(c);
        return;
    }

    if (i < nhot) {
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\n"
                     "X-User-Id: %s\r\n\r\n", path, hot_user);
    } else {
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\n"
                     "X-User-Id: %s%012d\r\n\r\n", path, prefix, i);
    }

    if (write(c->fd, req, n) != n) {
        fail(c);
        return;
    }

    ev.events = EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}


/* a whole line: the status line must say 200; "id: N" is an event */
static void
line(sse_conn_t *c)
{
    c->line[c->len] = '\0';

    if (c->lines++ == 0) {
        if (strncmp(c->line, "HTTP/1.1 200", 12) != 0) {
            fprintf(stderr, "sse: %s\n", c->line);
            fail(c);
        }

        return;
    }

    if (strncmp(c->line, "id: ", 4) == 0) {
        c->version = strtoll(c->line + 4, NULL, 10);

        if (!c->open) {
            c->open = 1;
            nopen++;
            npending--;
        }
    }
}


static void
input(int i)
{
    char         buf[4096];
    ssize_t      n, k;
    sse_conn_t  *c = &conns[i];

    n = read(c->fd, buf, sizeof(buf));

    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }

        fail(c);
        return;
    }

    for (k = 0; k < n && !c->dead; k++) {
        if (buf[k] == '\n') {
            if (c->len && c->line[c->len - 1] == '\r') {
                c->len--;
            }

            line(c);
            c->len = 0;

        } else if (c->len < SSE_LINE - 1) {
            c->line[c->len++] = buf[k];
        }
    }
}


static void
poll_once(int ms)
{
    int                  n, k;
    uint32_t             i;
    struct epoll_event   evs[256];

    n = epoll_wait(ep, evs, 256, ms);

    for (k = 0; k < n; k++) {
        i = evs[k].data.u32;

        if (conns[i].dead) {
            continue;
        }

        if (evs[k].events & EPOLLOUT) {
            send_request(i);

        } else {
            input(i);
        }
    }
}


/* the oldest version among the hot streams still open */
static int64_t
hot_min(void)
{
    int      i;
    int64_t  v = INT64_MAX;

    for (i = 0; i < nhot; i++) {
        if (!conns[i].dead && conns[i].version < v) {
            v = conns[i].version;
        }
    }

    return v;
}


/* one add to the hot cart on a connection of its own, answer not awaited:
 * the streams tell when it is done */
static int
add(void)
{
    int   fd, n;
    char  req[512], items[256];
    const char *slash;

    /* PATH is <location>/stream: the add goes to <location>/items */
    slash = strrchr(path, '/');
    snprintf(items, sizeof(items), "%.*s/items", (int) (slash - path), path);

    n = snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: bench\r\n"
                 "X-User-Id: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: 35\r\nConnection: close\r\n\r\n"
                 "{\"sku_id\":\"SKU-10001\",\"quantity\":1}", items, hot_user);

    fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || connect(fd, (struct sockaddr *) &sin_, sizeof(sin_)) < 0
        || write(fd, req, n) != n)
    {
        perror("sse: add");
        exit(1);
    }

    return fd;
}


int
main(int argc, char **argv)
{
    int      i, k, changes, fd, got, alive;
    char     buf[64];
    int64_t  t0, first, last, deadline, v0;

    if (argc != 8) {
        fprintf(stderr, "usage: sse PORT PATH N HOT CHANGES PREFIX "
                        "HOT_USER\n");
        return 2;
    }

    sin_.sin_family = AF_INET;
    sin_.sin_port = htons(atoi(argv[1]));
    sin_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    path = argv[2];
    nconns = atoi(argv[3]);
    nhot = atoi(argv[4]);
    changes = atoi(argv[5]);
    prefix = argv[6];
    hot_user = argv[7];

    if (nconns < 1 || nhot < 1 || nhot > nconns) {
        fprintf(stderr, "sse: need 1 <= HOT <= N\n");
        return 2;
    }

    conns = calloc(nconns, sizeof(sse_conn_t));
    ep = epoll_create1(0);

    if (conns == NULL || ep < 0) {
        perror("sse");
        return 1;
    }

    i = 0;
    deadline = now_us() + SSE_WAIT_MS * 1000LL;

    while ((i < nconns || npending > 0) && now_us() < deadline) {
        while (i < nconns && npending < SSE_CONNECTING) {
            start(i++);
        }

        poll_once(100);
    }

    printf("READY %d %d\n", nopen, nfailed + npending);
    fflush(stdout);

    if (fgets(buf, sizeof(buf), stdin) == NULL) {
        return 0;
    }

    for (k = 0; k < changes; k++) {
        /* the previous change has reached every hot stream */
        v0 = hot_min();
        fd = add();
        t0 = now_us();
        first = 0;
        last = -1;    /* not all of them within SSE_CHANGE_MS */
        deadline = t0 + SSE_CHANGE_MS * 1000LL;

        while (now_us() < deadline) {
            poll_once(1);

            got = 0;
            alive = 0;

            for (i = 0; i < nhot; i++) {
                if (!conns[i].dead) {
                    alive++;
                    got += conns[i].version > v0;
                }
            }

            if (got && first == 0) {
                first = now_us() - t0;
            }

            if (got == alive) {
                last = now_us() - t0;
                break;
            }
        }

        close(fd);

        printf("CHANGE %lld %lld\n", (long long) first, (long long) last);

        /* let heartbeats and late bytes drain before the next change */
        for (i = 0; i < 5; i++) {
            poll_once(10);
        }
    }

    printf("DONE %d\n", nopen);

    return 0;
}
