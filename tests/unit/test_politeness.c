/*
 * test_politeness — session slots per host, token buckets per domain and
 * backoff, on a private libev loop.
 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "politeness.h"

static int granted[16];
static ev_tstamp granted_at[16];
static struct ev_loop *loop;

static void
on_grant(void *arg)
{
	int i = (int)(intptr_t)arg;

	granted[i]++;
	granted_at[i] = ev_now(loop);
}

static void
on_stop(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_break(l, EVBREAK_ONE);
}

static void
run_for(double seconds)
{
	ev_timer t;

	ev_timer_init(&t, on_stop, seconds, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

static int
setup(void **state)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	memset(granted, 0, sizeof(granted));
	return loop == NULL;
}

static int
teardown(void **state)
{
	ev_loop_destroy(loop);
	return 0;
}

static const struct polite_params params = {
	.per_host = 2,
	.domain_rate = 1000.,
	.domain_burst = 100,
	.backoff_base = 60.,
	.backoff_max = 200.,
	.blocked_time = 3600.,
};

static void
test_slots_per_host(void **state)
{
	struct politeness *pl = politeness_new(loop, &params);

	assert_non_null(pl);
	for (int i = 0; i < 3; i++)
		assert_non_null(politeness_acquire(pl, "MX1.example.org", "example.org", on_grant,
		    (void *)(intptr_t)i));
	/* Never granted inside acquire: only the loop delivers. */
	assert_int_equal(granted[0] + granted[1] + granted[2], 0);
	run_for(0.01);
	assert_int_equal(granted[0], 1);
	assert_int_equal(granted[1], 1);
	assert_int_equal(granted[2], 0); /* third waits for a slot */
	/* Another host is not held up by the first. */
	assert_non_null(politeness_acquire(pl, "mx2.example.org", "example.org", on_grant,
	    (void *)(intptr_t)3));
	run_for(0.01);
	assert_int_equal(granted[3], 1);
	politeness_release(pl, "mx1.example.org", REASON_ACCEPTED); /* names fold case */
	run_for(0.01);
	assert_int_equal(granted[2], 1);
	politeness_release(pl, "mx1.example.org", REASON_ACCEPTED);
	politeness_release(pl, "mx1.example.org", REASON_ACCEPTED);
	politeness_release(pl, "mx2.example.org", REASON_ACCEPTED);
	politeness_free(pl);
}

static void
test_cancel(void **state)
{
	struct politeness *pl = politeness_new(loop, &params);
	struct polite_wait *w[4];

	for (int i = 0; i < 3; i++)
		w[i] = politeness_acquire(pl, "mx", "d", on_grant, (void *)(intptr_t)i);
	politeness_cancel(w[2]);      /* waiting: just leaves */
	politeness_cancel(w[0]);      /* granted, not yet delivered: slot returns */
	w[3] = politeness_acquire(pl, "mx", "d", on_grant, (void *)(intptr_t)3);
	run_for(0.01);
	assert_int_equal(granted[0], 0);
	assert_int_equal(granted[1], 1);
	assert_int_equal(granted[2], 0);
	assert_int_equal(granted[3], 1);
	(void)w;
	politeness_release(pl, "mx", REASON_ACCEPTED);
	politeness_release(pl, "mx", REASON_ACCEPTED);
	politeness_free(pl);
}

static void
test_token_bucket(void **state)
{
	struct polite_params p = params;
	p.domain_rate = 20.;  /* one token every 50 ms */
	p.domain_burst = 1;
	struct politeness *pl = politeness_new(loop, &p);

	ev_now_update(loop);
	ev_tstamp t0 = ev_now(loop);
	/* Different hosts, same domain: the bucket spaces the sessions. */
	politeness_acquire(pl, "mx1", "example.org", on_grant, (void *)(intptr_t)0);
	politeness_acquire(pl, "mx2", "example.org", on_grant, (void *)(intptr_t)1);
	politeness_acquire(pl, "mx3", "other.org", on_grant, (void *)(intptr_t)2);
	run_for(0.2);
	assert_int_equal(granted[0], 1);
	assert_int_equal(granted[1], 1);
	assert_int_equal(granted[2], 1);
	assert_true(granted_at[0] - t0 < 0.03);
	assert_true(granted_at[2] - t0 < 0.03);   /* another domain: its own bucket */
	assert_true(granted_at[1] - t0 >= 0.04);  /* waited for a token */
	politeness_release(pl, "mx1", REASON_ACCEPTED);
	politeness_release(pl, "mx2", REASON_ACCEPTED);
	politeness_release(pl, "mx3", REASON_ACCEPTED);
	politeness_free(pl);
}

static void
test_backoff(void **state)
{
	struct politeness *pl = politeness_new(loop, &params);
	enum reason why;
	double left;

	assert_false(politeness_backoff(pl, "mx", &why, &left));
	politeness_acquire(pl, "mx", "d", on_grant, (void *)(intptr_t)0);
	run_for(0.01);
	politeness_release(pl, "mx", REASON_RATE_LIMITED);
	assert_true(politeness_backoff(pl, "mx", &why, &left));
	assert_int_equal(why, REASON_RATE_LIMITED);
	assert_true(left > 59. && left <= 60.);
	/* Again: doubled. */
	politeness_acquire(pl, "mx", "d", on_grant, (void *)(intptr_t)1);
	run_for(0.01);
	politeness_release(pl, "mx", REASON_RATE_LIMITED);
	assert_true(politeness_backoff(pl, "mx", &why, &left));
	assert_true(left > 119. && left <= 120.);
	/* And capped at backoff_max. */
	politeness_acquire(pl, "mx", "d", on_grant, (void *)(intptr_t)2);
	run_for(0.01);
	politeness_release(pl, "mx", REASON_RATE_LIMITED);
	assert_true(politeness_backoff(pl, "mx", &why, &left));
	assert_true(left > 199. && left <= 200.);
	/* A block: the blocked time. */
	politeness_acquire(pl, "mx9", "d", on_grant, (void *)(intptr_t)3);
	run_for(0.01);
	politeness_release(pl, "mx9", REASON_BLOCKED);
	assert_true(politeness_backoff(pl, "MX9", &why, &left));
	assert_int_equal(why, REASON_BLOCKED);
	assert_true(left > 3599.);
	struct polite_stats st;
	politeness_stats(pl, &st);
	assert_int_equal(st.backoffs, 4);
	politeness_free(pl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slots_per_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_bucket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
