/*
 * kafka-mock: a Kafka cluster for tests, served by librdkafka's own mock
 * cluster (rdkafka_mock.h) on fixed loopback ports.
 *
 *   kafka-mock [--port P] [--brokers N] [--topic NAME[:PARTITIONS]]...
 *
 * Brokers 1..N listen on 127.0.0.1:P .. P+N-1 (P = 0: ports the kernel
 * picks). When they listen, one line "ready BOOTSTRAP" goes to stdout.
 * Signals drive it from a test:
 *
 *   SIGUSR1   every broker goes down: connections are closed and new ones
 *             refused, the log is kept (an outage, not a data loss)
 *   SIGUSR2   every broker comes back on the same port
 *   SIGTERM, SIGINT   exit
 *
 * Messages live in memory for the life of the process. The same producer
 * and consumer code runs against it and against a real cluster.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>


#define MAX_TOPICS  16


static int   next_port;     /* the port the next mock broker gets, or 0 */
static int   last_port;


/*
 * librdkafka 2.0's mock brokers bind 127.0.0.1:0, a port the kernel picks.
 * This program's own bind() comes first in symbol lookup, so it hands each
 * new broker listener the next fixed port instead; every other bind() is
 * passed through unchanged. (Newer librdkafka can set ports itself.)
 */

int
bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sockaddr_in   sin;
    static int         (*real_bind)(int, const struct sockaddr *, socklen_t);

    if (real_bind == NULL) {
        real_bind = (int (*)(int, const struct sockaddr *, socklen_t))
                    dlsym(RTLD_NEXT, "bind");
        if (real_bind == NULL) {
            errno = ENOSYS;
            return -1;
        }
    }

    if (next_port && next_port <= last_port
        && addr->sa_family == AF_INET && len >= sizeof(sin))
    {
        memcpy(&sin, addr, sizeof(sin));

        if (sin.sin_port == 0
            && sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
        {
            sin.sin_port = htons((unsigned short) next_port++);
            return real_bind(fd, (struct sockaddr *) &sin, sizeof(sin));
        }
    }

    return real_bind(fd, addr, len);
}


static void
usage(FILE *f)
{
    fprintf(f,
"NAME\n"
"    kafka-mock - a Kafka cluster in one process, for tests\n"
"\n"
"SYNOPSIS\n"
"    kafka-mock [--port P] [--brokers N] [--topic NAME[:PARTITIONS]]...\n"
"\n"
"DESCRIPTION\n"
"    Serves the Kafka protocol with librdkafka's mock cluster. Brokers\n"
"    listen on 127.0.0.1:P to P+N-1 (default P 19430, N 3; P 0 lets the\n"
"    kernel pick). Topics are created with the given partition count\n"
"    (default 4) and replication factor min(N, 3); others are created on\n"
"    first use. Prints \"ready BOOTSTRAP\" once the brokers listen.\n"
"\n"
"SIGNALS\n"
"    USR1  all brokers down (connections closed, new ones refused)\n"
"    USR2  all brokers up again\n"
"    TERM, INT  exit\n");
}


int
main(int argc, char **argv)
{
    int                       i, port, nbrokers, ntopics, sig, parts;
    char                     *colon, errstr[512];
    char                     *topics[MAX_TOPICS];
    int                       partitions[MAX_TOPICS];
    sigset_t                  set;
    rd_kafka_t               *rk;
    rd_kafka_conf_t          *conf;
    rd_kafka_mock_cluster_t  *mcluster;

    port = 19430;
    nbrokers = 3;
    ntopics = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;

        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);

        } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            nbrokers = atoi(argv[++i]);

        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc
                   && ntopics < MAX_TOPICS)
        {
            topics[ntopics] = argv[++i];
            partitions[ntopics] = 4;
            colon = strchr(topics[ntopics], ':');
            if (colon) {
                *colon = '\0';
                parts = atoi(colon + 1);
                partitions[ntopics] = parts > 0 ? parts : 1;
            }
            ntopics++;

        } else {
            usage(stderr);
            return 2;
        }
    }

    if (port < 0 || port > 65535 - nbrokers || nbrokers < 1 || nbrokers > 9) {
        fprintf(stderr, "kafka-mock: bad --port or --brokers\n");
        return 2;
    }

    /* signals are taken with sigwait() here, never by librdkafka threads */

    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "kafka-mock: %s\n", errstr);
        return 1;
    }

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "kafka-mock: %s\n", errstr);
        return 1;
    }

    if (port) {
        next_port = port;
        last_port = port + nbrokers - 1;
    }

    mcluster = rd_kafka_mock_cluster_new(rk, nbrokers);
    next_port = 0;

    if (mcluster == NULL) {
        fprintf(stderr, "kafka-mock: cannot start the brokers on ports "
                "%d-%d (in use?)\n", port, port + nbrokers - 1);
        rd_kafka_destroy(rk);
        return 1;
    }

    for (i = 0; i < ntopics; i++) {
        if (rd_kafka_mock_topic_create(mcluster, topics[i], partitions[i],
                                       nbrokers < 3 ? nbrokers : 3)
            != RD_KAFKA_RESP_ERR_NO_ERROR)
        {
            fprintf(stderr, "kafka-mock: cannot create topic %s\n",
                    topics[i]);
        }
    }

    printf("ready %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
    fflush(stdout);

    for ( ;; ) {
        if (sigwait(&set, &sig) != 0) {
            continue;
        }

        if (sig == SIGUSR1 || sig == SIGUSR2) {
            for (i = 1; i <= nbrokers; i++) {
                if (sig == SIGUSR1) {
                    rd_kafka_mock_broker_set_down(mcluster, i);
                } else {
                    rd_kafka_mock_broker_set_up(mcluster, i);
                }
            }

            fprintf(stderr, "kafka-mock: brokers %s\n",
                    sig == SIGUSR1 ? "down" : "up");
            continue;
        }

        break;
    }

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);

    return 0;
}
