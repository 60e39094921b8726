// struct timeval helpers of the public API.
#include "internal.hh"

TEVENT_EXPORT int tevent_timeval_compare(const struct timeval *tv1,
					 const struct timeval *tv2)
{
	if (tv1->tv_sec != tv2->tv_sec) {
		return tv1->tv_sec > tv2->tv_sec ? 1 : -1;
	}
	if (tv1->tv_usec != tv2->tv_usec) {
		return tv1->tv_usec > tv2->tv_usec ? 1 : -1;
	}
	return 0;
}

TEVENT_EXPORT struct timeval tevent_timeval_zero(void)
{
	return (struct timeval){0, 0};
}

TEVENT_EXPORT struct timeval tevent_timeval_current(void)
{
	struct timeval tv;
	gettimeofday(&tv, nullptr);
	return tv;
}

TEVENT_EXPORT struct timeval tevent_timeval_set(uint32_t secs, uint32_t usecs)
{
	struct timeval tv;
	tv.tv_sec = secs;
	tv.tv_usec = usecs;
	return tv;
}

// Returns tv2 - tv1, or zero when tv1 is not before tv2.
TEVENT_EXPORT struct timeval tevent_timeval_until(const struct timeval *tv1,
						  const struct timeval *tv2)
{
	if (tevent_timeval_compare(tv1, tv2) >= 0) {
		return tevent_timeval_zero();
	}
	struct timeval t;
	t.tv_sec = tv2->tv_sec - tv1->tv_sec;
	if (tv1->tv_usec > tv2->tv_usec) {
		t.tv_sec--;
		t.tv_usec = 1000000 - (tv1->tv_usec - tv2->tv_usec);
	} else {
		t.tv_usec = tv2->tv_usec - tv1->tv_usec;
	}
	return t;
}

TEVENT_EXPORT bool tevent_timeval_is_zero(const struct timeval *tv)
{
	return tv->tv_sec == 0 && tv->tv_usec == 0;
}

TEVENT_EXPORT struct timeval tevent_timeval_add(const struct timeval *tv,
						uint32_t secs, uint32_t usecs)
{
	struct timeval r = *tv;
	r.tv_sec += secs;
	r.tv_usec += usecs;
	r.tv_sec += r.tv_usec / 1000000;
	r.tv_usec = r.tv_usec % 1000000;
	return r;
}

TEVENT_EXPORT struct timeval tevent_timeval_current_ofs(uint32_t secs,
							uint32_t usecs)
{
	struct timeval tv = tevent_timeval_current();
	return tevent_timeval_add(&tv, secs, usecs);
}
