/*
 * cartd: command line, configuration file, clock and logging.
 */

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include "cartd.h"
#include "ngx_http_cart_slot.h"


cartd_conf_t   cartd_conf;
volatile int   cartd_stop;

static int     cartd_log_level = CARTD_LOG_INFO;
static time_t  cartd_clock_base;      /* --now, or 0 for the real clock */
static time_t  cartd_clock_start;


static const char  cartd_usage[] =
"NAME\n"
"    cartd - PostgreSQL snapshots, abandoned carts and restore for\n"
"    ngx_http_cart_module\n"
"\n"
"SYNOPSIS\n"
"    cartd [-c FILE] [--now TIME] [-v] [COMMAND]\n"
"\n"
"COMMANDS\n"
"    run        (default) consume cart-events, keep cart_snapshots current,\n"
"               reconcile from Redis and detect abandoned carts on their\n"
"               intervals, until SIGTERM or SIGINT\n"
"    migrate    apply the schema migrations and exit\n"
"    reconcile  one reconciliation pass from Redis (SCAN) and exit\n"
"    abandon    one abandonment pass and exit\n"
"    restore    rebuild the Redis carts from PostgreSQL, with the TTLs\n"
"               they had left, and exit; carts Redis still has are kept\n"
"\n"
"OPTIONS\n"
"    -c FILE     configuration file (default /etc/cartd.conf)\n"
"    --now TIME  the clock starts at TIME (unix seconds) instead of now;\n"
"                for tests and replays of abandonment\n"
"    -v          debug logging\n"
"    --activity-key OWNER\n"
"                print the activity index key of a cart owner and exit\n"
"    -h, --help  this text\n"
"\n"
"CONFIGURATION\n"
"    One \"name value\" per line, # starts a comment. Times take s, m, h, d.\n"
"\n"
"    kafka_brokers LIST             required\n"
"    kafka_topic NAME               cart-events\n"
"    kafka_group NAME               shopping_cart_system-processors\n"
"    kafka_dlq_topic NAME           cart-events-dlq\n"
"    kafka_reminders_topic NAME     cart-reminders\n"
"    kafka_property NAME VALUE      passed to librdkafka (repeatable)\n"
"    postgres CONNINFO              required, a libpq conninfo or URI\n"
"    redis URL                      redis://[:password@]host[:port][/db]\n"
"    redis_cluster on|off           off; on: redis is a seed of a Redis\n"
"                                   Cluster, carts are read on their masters\n"
"    reconcile_interval TIME        5m (0: never)\n"
"    abandon_interval TIME          1m (0: never)\n"
"    abandon_after TIME             1h, the first reminder step\n"
"    cart_ttl TIME                  30d, as the module's cart_ttl\n"
"    guest_ttl TIME                 1d, as the module's cart_guest_ttl\n"
"    processed_retention TIME       7d, how long event ids are remembered\n"
"    max_tries N                    3, tries before a message goes to the DLQ\n"
"    batch_size N                   500\n"
"    min_reminder_value AMOUNT      10.00, no reminders for carts worth less\n"
"    discount_code CODE             COMEBACK10, in the 24 h reminder\n"
"\n"
"OUTPUT\n"
"    Logs to stderr. Exit status 0 on success, 1 on failure, 2 on usage.\n";


time_t
cartd_now(void)
{
    if (cartd_clock_base) {
        return cartd_clock_base + (time(NULL) - cartd_clock_start);
    }

    return time(NULL);
}


void
cartd_log(int level, const char *fmt, ...)
{
    char            ts[32];
    va_list         args;
    struct tm       tm;
    struct timeval  tv;

    static const char  *names[] = { "emerg", "alert", "crit", "error",
                                    "warn", "notice", "info", "debug" };

    if (level > cartd_log_level) {
        return;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    fprintf(stderr, "%s.%03dZ cartd[%d] %s: ", ts, (int) (tv.tv_usec / 1000),
            (int) getpid(), names[level & 7]);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


static long
cartd_parse_time(const char *s)
{
    char  *end;
    long   n;

    n = strtol(s, &end, 10);
    if (end == s || n < 0) {
        return -1;
    }

    switch (*end) {
    case '\0': case 's': return n;
    case 'm': return n * 60;
    case 'h': return n * 3600;
    case 'd': return n * 86400;
    }

    return -1;
}


static int64_t
cartd_parse_amount(const char *s)
{
    char    *end;
    long     units, cents;

    units = strtol(s, &end, 10);
    cents = 0;

    if (*end == '.') {
        if (!isdigit((unsigned char) end[1])) {
            return -1;
        }
        cents = (end[1] - '0') * 10;
        if (isdigit((unsigned char) end[2])) {
            cents += end[2] - '0';
        }
    }

    return units < 0 ? -1 : (int64_t) units * 100 + cents;
}


static int
cartd_read_conf(const char *path)
{
    int       lineno;
    long      t;
    char      line[4096], *name, *value, *p;
    FILE     *f;
    cartd_conf_t  *cf = &cartd_conf;

    cf->topic = "cart-events";
    cf->group = "shopping_cart_system-processors";
    cf->dlq_topic = "cart-events-dlq";
    cf->reminders_topic = "cart-reminders";
    cf->redis = "redis://127.0.0.1:6379";
    cf->reconcile_interval = 300;
    cf->abandon_interval = 60;
    cf->abandon_after = 3600;
    cf->cart_ttl = 30 * 86400;
    cf->guest_ttl = 86400;
    cf->retention = 7 * 86400;
    cf->max_tries = 3;
    cf->batch_size = 500;
    cf->min_reminder_value = 1000;
    cf->discount_code = "COMEBACK10";

    f = fopen(path, "r");
    if (f == NULL) {
        cartd_log(CARTD_LOG_ERR, "cannot open %s: %m", path);
        return -1;
    }

    for (lineno = 1; fgets(line, sizeof(line), f); lineno++) {
        if ((p = strchr(line, '#'))) {
            *p = '\0';
        }

        name = strtok(line, " \t\r\n");
        if (name == NULL) {
            continue;
        }

        value = strtok(NULL, " \t\r\n");
        if (value == NULL) {
            cartd_log(CARTD_LOG_ERR, "%s:%d: \"%s\" needs a value",
                      path, lineno, name);
            goto failed;
        }

        if (strcmp(name, "kafka_property") == 0) {
            p = strtok(NULL, " \t\r\n");
            if (p == NULL || cf->nprops == CARTD_MAX_PROPS) {
                cartd_log(CARTD_LOG_ERR, "%s:%d: kafka_property NAME VALUE",
                          path, lineno);
                goto failed;
            }
            cf->props[cf->nprops].name = strdup(value);
            cf->props[cf->nprops++].value = strdup(p);
            continue;
        }

#define STR(n, field)                                                         \
        if (strcmp(name, n) == 0) { cf->field = strdup(value); continue; }
#define TIME(n, field)                                                        \
        if (strcmp(name, n) == 0) {                                           \
            if ((t = cartd_parse_time(value)) < 0) goto invalid;              \
            cf->field = t; continue;                                          \
        }

        STR("kafka_brokers", brokers)
        STR("kafka_topic", topic)
        STR("kafka_group", group)
        STR("kafka_dlq_topic", dlq_topic)
        STR("kafka_reminders_topic", reminders_topic)
        STR("postgres", postgres)
        STR("redis", redis)
        STR("discount_code", discount_code)
        TIME("reconcile_interval", reconcile_interval)
        TIME("abandon_interval", abandon_interval)
        TIME("abandon_after", abandon_after)
        TIME("cart_ttl", cart_ttl)
        TIME("guest_ttl", guest_ttl)
        TIME("processed_retention", retention)

        if (strcmp(name, "redis_cluster") == 0) {
            if (strcmp(value, "on") == 0) {
                cf->redis_cluster = 1;
            } else if (strcmp(value, "off") == 0) {
                cf->redis_cluster = 0;
            } else {
                goto invalid;
            }
            continue;
        }

        if (strcmp(name, "max_tries") == 0) {
            cf->max_tries = atoi(value);
            if (cf->max_tries < 1) goto invalid;
            continue;
        }

        if (strcmp(name, "batch_size") == 0) {
            cf->batch_size = atoi(value);
            if (cf->batch_size < 1) goto invalid;
            continue;
        }

        if (strcmp(name, "min_reminder_value") == 0) {
            cf->min_reminder_value = cartd_parse_amount(value);
            if (cf->min_reminder_value < 0) goto invalid;
            continue;
        }

        cartd_log(CARTD_LOG_ERR, "%s:%d: unknown directive \"%s\"",
                  path, lineno, name);
        goto failed;

    invalid:
        cartd_log(CARTD_LOG_ERR, "%s:%d: invalid value \"%s\" of \"%s\"",
                  path, lineno, value, name);
        goto failed;
    }

    fclose(f);

    if (cf->postgres == NULL) {
        cartd_log(CARTD_LOG_ERR, "%s: \"postgres\" is required", path);
        return -1;
    }

    return 0;

failed:

    fclose(f);
    return -1;
}


static void
cartd_signal(int sig)
{
    cartd_stop = 1;
}


int
main(int argc, char **argv)
{
    int            i, rc;
    const char    *conf, *command;
    PGconn        *pg;
    rd_kafka_t    *rk;
    cartd_redis_t *redis;

    conf = "/etc/cartd.conf";
    command = "run";

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(cartd_usage, stdout);
            return 0;

        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conf = argv[++i];

        } else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            cartd_clock_base = strtol(argv[++i], NULL, 10);
            cartd_clock_start = time(NULL);

        } else if (strcmp(argv[i], "--activity-key") == 0 && i + 1 < argc) {
            char  key[64];

            if (ngx_http_cart_slot_init() != 0) {
                return 1;
            }
            cartd_activity_key(argv[i + 1], key, sizeof(key));
            puts(key);
            return 0;

        } else if (strcmp(argv[i], "-v") == 0) {
            cartd_log_level = CARTD_LOG_DEBUG;

        } else if (argv[i][0] != '-' && i == argc - 1) {
            command = argv[i];

        } else {
            fputs(cartd_usage, stderr);
            return 2;
        }
    }

    if (strcmp(command, "run") && strcmp(command, "migrate")
        && strcmp(command, "reconcile") && strcmp(command, "abandon")
        && strcmp(command, "restore"))
    {
        fprintf(stderr, "cartd: unknown command \"%s\"\n\n", command);
        fputs(cartd_usage, stderr);
        return 2;
    }

    if (cartd_read_conf(conf) != 0) {
        return 1;
    }

    signal(SIGTERM, cartd_signal);
    signal(SIGINT, cartd_signal);
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(command, "run") == 0) {
        return cartd_run() == 0 ? 0 : 1;
    }

    pg = cartd_pg_connect();
    if (pg == NULL || cartd_pg_migrate(pg) != 0) {
        return 1;
    }

    rc = 0;

    if (strcmp(command, "migrate") != 0) {
        redis = cartd_redis_connect();
        if (redis == NULL) {
            PQfinish(pg);
            return 1;
        }

        if (strcmp(command, "reconcile") == 0) {
            rc = cartd_reconcile(pg, redis);

        } else if (strcmp(command, "restore") == 0) {
            rc = cartd_restore(pg, redis);

        } else {
            rk = cartd_producer();
            rc = rk ? cartd_abandon(pg, redis, rk, cartd_now()) : -1;
            if (rk) {
                rd_kafka_destroy(rk);
            }
        }

        cartd_redis_free(redis);
    }

    PQfinish(pg);

    return rc == 0 ? 0 : 1;
}
