/*
 * fuzz_config — libFuzzer harness for config_load() (src/probed/config.h):
 * the input is written to a temporary file, which is loaded, judged and
 * freed.  This covers libconfig's parser as probed drives it, the integer
 * pre-scan (lex_integers) and every value check in the key table.
 *
 * Invariants: a failure leaves a one-line, NUL-terminated, printable
 * message in err; a success yields the strings every consumer dereferences
 * without checking, and the loaded file compared with itself needs no
 * restart.
 *
 * The temporary file lives in $TMPDIR (or /tmp) and is removed at exit.
 *
 * Known leaks outside probed, suppressed below by the allocating
 * libconfig function (so a config_destroy() missing in probed would still
 * show): libconfig 1.5's scanner drops the buffer of a string token
 * (strbuf_append, libconfig_yylex) when a syntax error follows it, and
 * config_destroy() cannot free it.  Reproduced with config_read_string()
 * alone on `a = 2".x"]; b = "y"; };`.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static char path[4096];
static int fd = -1;

static void
cleanup(void)
{
	if (fd >= 0)
		unlink(path);
}

static bool
setup(void)
{
	const char *dir = getenv("TMPDIR");

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/fuzz_config.XXXXXX", dir);
	if ((fd = mkstemp(path)) < 0)
		return false;
	atexit(cleanup);
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024], names[1024];
	struct config *cfg;
	size_t n;

	if (size > 65536)
		return 0;
	if (fd < 0 && !setup())
		abort();
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();

	memset(err, 'x', sizeof(err));
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		n = strnlen(err, sizeof(err));
		CHECK(n > 0 && n < sizeof(err));
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
		return 0;
	}
	CHECK(cfg->socket != NULL && cfg->state_dir != NULL && cfg->helo_name != NULL);
	CHECK(cfg->mail_from != NULL && cfg->user != NULL && cfg->group != NULL);
	CHECK(cfg->socket_group != NULL);
	CHECK(cfg->policy.action_deliverable != NULL && cfg->policy.on_error != NULL);
	for (size_t i = 0; i < cfg->smtp.allow_networks.n; i++)
		CHECK(cfg->smtp.allow_networks.v[i] != NULL);
	for (size_t i = 0; i < cfg->policy.skip_networks.n; i++)
		CHECK(cfg->policy.skip_networks.v[i] != NULL);
	CHECK(cfg->smtp.port >= 1 && cfg->smtp.port <= 65535);
	CHECK(config_restart_keys(cfg, cfg, names, sizeof(names)) == 0);
	config_free(cfg);
	return 0;
}
