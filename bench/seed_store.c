/*
 * seed_store — fill a state_dir with verdicts the way probed itself writes
 * them, so that a benchmark (bench/startup.py) can start probed on a full
 * persistent cache.
 *
 *   seed_store [-n VERDICTS] [-D DOMAINS] [-s SEED] STATE_DIR
 *
 * Writes VERDICTS (default 1,000,000) records into STATE_DIR/probed.mdb
 * through the daemon's own code: cache.c's verdict_entry_pack() and
 * domain.c's domain_facts_pack() for the records, store.c's store_put() and
 * store_flush() for the file, so the file is exactly what probed would have
 * left behind.  Addresses look like real ones (first.last, flast, first_last
 * plus a number at DOMAINS domains, default VERDICTS / 20) and are
 * distinct by construction; verdicts are mixed as a busy verifier's are
 * (72 % deliverable, 20 % no such user, 5 % catch-all, 2 % mailbox full,
 * 1 % disabled) with the server texts Postfix sends; each domain gets its
 * facts record (catch-all status).  Every record expires at least 18 hours
 * from now with probed's default TTLs, so nothing is dropped as expired
 * while a benchmark runs.
 *
 * Refuses a STATE_DIR that already holds probed.mdb: a benchmark wants an
 * exact count.  Deterministic for a given SEED.  Prints one line: how many,
 * how long, how large.
 */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "domain.h"
#include "log.h"
#include "store.h"

#define FLUSH_EVERY 50000
#define RECORD_MAX 1024

static const char *const first_names[] = {
	"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
	"judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
	"victor", "walter", "yolanda", "anna", "marco", "lena", "jonas", "sofia",
	"lukas", "emma", "noah", "mia", "elias", "hannah", "paul", "laura", "felix",
	"clara", "david", "sarah", "tom", "julia", "ben", "nina", "leon", "eva",
	"max", "lisa", "jan", "kim", "omar", "yuki", "priya",
};
static const char *const last_names[] = {
	"smith", "jones", "miller", "davis", "garcia", "martin", "brown", "wilson",
	"moore", "taylor", "anderson", "thomas", "jackson", "white", "harris",
	"clark", "lewis", "walker", "young", "allen", "king", "wright", "scott",
	"mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner",
	"becker", "schulz", "hoffmann", "koch", "richter", "klein", "wolf",
	"dubois", "laurent", "moreau", "rossi", "russo", "ferrari", "esposito",
	"nakamura", "tanaka", "kowalski", "nowak", "novak", "jensen",
};
static const char *const domain_words[] = {
	"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne",
	"wonka", "tyrell", "cyberdyne", "soylent", "vandelay", "aperture",
	"oscorp", "massive", "dunder", "gringotts", "monarch", "nakatomi",
	"pied-piper", "prestige", "sirius", "vehement", "zorg", "bluth",
	"contoso", "fabrikam", "northwind", "tailspin", "woodgrove", "litware",
	"adatum", "proseware", "lucerne", "wingtip", "fourthcoffee", "alpine",
	"blueyonder", "consolidated", "margie", "treyresearch", "humongous",
	"wideworld", "coho", "graphic", "southridge", "datum", "relecloud",
	"munson", "fineartschool",
};
static const char *const tlds[] = {
	"com", "org", "net", "de", "fr", "co.uk", "nl", "it", "es", "io",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;

/* splitmix64: small, fast, good enough to mix verdicts and ages. */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Domain number d -> a distinct name: word, a number once the words and
 * TLDs are used up, TLD. */
static void
domain_name(char *out, size_t cap, uint64_t d)
{
	uint64_t w = d % COUNT(domain_words);
	uint64_t t = (d / COUNT(domain_words)) % COUNT(tlds);
	uint64_t k = d / (COUNT(domain_words) * COUNT(tlds));

	if (k == 0)
		snprintf(out, cap, "%s.%s", domain_words[w], tlds[t]);
	else
		snprintf(out, cap, "%s%" PRIu64 ".%s", domain_words[w], k, tlds[t]);
}

/* Mailbox number j at a domain -> a distinct local part (j is a bijection of
 * first name, last name, style and a number). */
static void
local_part(char *out, size_t cap, uint64_t j)
{
	const char *f = first_names[j % COUNT(first_names)];
	uint64_t r = j / COUNT(first_names);
	const char *l = last_names[r % COUNT(last_names)];
	r /= COUNT(last_names);
	unsigned style = (unsigned)(r % 3);
	uint64_t num = r / 3;
	char digits[24] = "";

	if (num > 0)
		snprintf(digits, sizeof(digits), "%" PRIu64, num);
	switch (style) {
	case 0:
		snprintf(out, cap, "%s.%s%s", f, l, digits);
		break;
	case 1:
		snprintf(out, cap, "%c%s%s", f[0], l, digits);
		break;
	default:
		snprintf(out, cap, "%s_%s%s", f, l, digits);
		break;
	}
}

/* One verdict as a probe at `now` - age would have left it. */
static void
make_verdict(struct verdict_entry *v, const char *address, const char *domain, int64_t now)
{
	unsigned roll = (unsigned)(rng() % 100);
	int64_t age;

	memset(v, 0, sizeof(*v));
	snprintf(v->mx, sizeof(v->mx), "mx%u.%.200s", (unsigned)(rng() % 2) + 1, domain);
	v->tls = rng() % 4 ? TRI_YES : TRI_NO;
	if (roll < 72) {
		v->reason = REASON_ACCEPTED;
		v->code = 250;
		snprintf(v->enhanced, sizeof(v->enhanced), "2.1.5");
		snprintf(v->text, sizeof(v->text), "%s", rng() % 2 ? "Ok" : "Recipient address ok");
		v->catch_all = TRI_NO;
	} else if (roll < 92) {
		v->reason = REASON_NO_SUCH_USER;
		v->code = 550;
		snprintf(v->enhanced, sizeof(v->enhanced), "5.1.1");
		snprintf(v->text, sizeof(v->text),
		    "<%s>: Recipient address rejected: User unknown in virtual mailbox table",
		    address);
		v->catch_all = TRI_NO;
	} else if (roll < 97) {
		v->reason = REASON_CATCH_ALL;
		v->code = 250;
		snprintf(v->enhanced, sizeof(v->enhanced), "2.1.5");
		snprintf(v->text, sizeof(v->text), "Ok");
		v->catch_all = TRI_YES;
	} else if (roll < 99) {
		v->reason = REASON_MAILBOX_FULL;
		v->code = 552;
		snprintf(v->enhanced, sizeof(v->enhanced), "5.2.2");
		snprintf(v->text, sizeof(v->text),
		    "<%s>: Recipient address rejected: Mailbox full", address);
		v->catch_all = TRI_NO;
	} else {
		v->reason = REASON_DISABLED;
		v->code = 550;
		snprintf(v->enhanced, sizeof(v->enhanced), "5.2.1");
		snprintf(v->text, sizeof(v->text),
		    "<%s>: Recipient address rejected: account disabled", address);
		v->catch_all = TRI_NO;
	}
	/* probed's default TTLs: positive 7 days (refresh 1 day), negative 1
	 * day (refresh 3 hours).  Ages keep every expiry 18 hours away. */
	if (cache_kind_of(v->reason) == CACHE_NEGATIVE) {
		age = (int64_t)(rng() % (6 * 3600));
		v->made = now - age;
		v->refresh = v->made + 10800;
		v->expires = v->made + 86400;
	} else {
		age = (int64_t)(rng() % (3 * 86400));
		v->made = now - age;
		v->refresh = v->made + 86400;
		v->expires = v->made + 604800;
	}
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: seed_store [-n VERDICTS] [-D DOMAINS] [-s SEED] STATE_DIR\n");
}

static int
parse_count(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > 100000000ULL)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	uint64_t n = 1000000, ndom = 0, seed = 1;
	int opt;

	while ((opt = getopt(argc, argv, "n:D:s:h")) != -1) {
		switch (opt) {
		case 'n':
			if (parse_count(optarg, &n) != 0) {
				fprintf(stderr, "seed_store: -n wants 0..100000000\n");
				return 64;
			}
			break;
		case 'D':
			if (parse_count(optarg, &ndom) != 0 || ndom == 0) {
				fprintf(stderr, "seed_store: -D wants 1..100000000\n");
				return 64;
			}
			break;
		case 's':
			if (parse_count(optarg, &seed) != 0) {
				fprintf(stderr, "seed_store: -s wants a number\n");
				return 64;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 64;
	}
	const char *dir = argv[optind];
	if (ndom == 0)
		ndom = n / 20 > 0 ? n / 20 : 1;
	if (ndom > n && n > 0)
		ndom = n;
	rng_state = seed;

	char path[4096];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/probed.mdb", dir);
	if (stat(path, &sb) == 0) {
		fprintf(stderr, "seed_store: %s exists; seed an empty state_dir\n", path);
		return 1;
	}

	log_open("seed_store", LOG_TARGET_STDERR);
	log_set_level(LOG_WARNING);
	char err[256];
	struct store *s = store_open(dir, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "seed_store: %s\n", err);
		return 1;
	}

	double t0 = mono();
	int64_t now = (int64_t)time(NULL);
	unsigned char rec[RECORD_MAX];
	char domain[128], local[64], address[CACHE_KEY_MAX], key[CACHE_KEY_MAX];
	struct verdict_entry v;
	uint64_t written = 0, queued = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t d = i % ndom;
		domain_name(domain, sizeof(domain), d);
		local_part(local, sizeof(local), i / ndom);
		int al = snprintf(address, sizeof(address), "%s@%s", local, domain);
		if (al < 0 || (size_t)al >= sizeof(address))
			continue;
		size_t klen = cache_key(address, (size_t)al, key, sizeof(key));
		make_verdict(&v, address, domain, now);
		size_t rl = verdict_entry_pack(&v, rec, sizeof(rec));
		if (klen == 0 || rl == 0) {
			fprintf(stderr, "seed_store: cannot pack %s\n", address);
			store_close(s);
			return 1;
		}
		if (store_put(s, STORE_VERDICTS, key, klen, rec, rl) != 0) {
			fprintf(stderr, "seed_store: store_put failed at %" PRIu64 "\n", i);
			store_close(s);
			return 1;
		}
		written++;
		if (++queued == FLUSH_EVERY) {
			if (store_flush(s) != 0) {
				fprintf(stderr, "seed_store: flush failed\n");
				store_close(s);
				return 1;
			}
			queued = 0;
		}
	}

	/* Facts per domain, as engine.c keeps them: catch-all status, learned
	 * within the last day (cache.catch_all_ttl). */
	uint64_t ndomains = n > 0 ? ndom : 0;
	for (uint64_t d = 0; d < ndomains; d++) {
		struct domain_facts f;
		memset(&f, 0, sizeof(f));
		f.catch_all = rng() % 20 == 0 ? TRI_YES : TRI_NO;
		f.catch_all_at = now - (int64_t)(rng() % 43200);
		domain_name(domain, sizeof(domain), d);
		size_t rl = domain_facts_pack(&f, rec, sizeof(rec));
		if (rl == 0 || store_put(s, STORE_DOMAINS, domain, strlen(domain), rec, rl) != 0) {
			fprintf(stderr, "seed_store: cannot store facts of %s\n", domain);
			store_close(s);
			return 1;
		}
		if (++queued == FLUSH_EVERY) {
			if (store_flush(s) != 0) {
				fprintf(stderr, "seed_store: flush failed\n");
				store_close(s);
				return 1;
			}
			queued = 0;
		}
	}
	if (store_flush(s) != 0) {
		fprintf(stderr, "seed_store: flush failed\n");
		store_close(s);
		return 1;
	}
	store_close(s);
	double took = mono() - t0;
	long long size = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
	printf("seed_store: verdicts=%" PRIu64 " domains=%" PRIu64 " file=%s size_kib=%lld "
	    "seconds=%.2f\n", written, ndomains, path, size / 1024, took);
	return 0;
}
