/*
 * audittime.c - the times ktadmin audit takes (its queries' --since and
 * --until, the chain's --before and --prune-before): one parser.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ktadmin.h"

/* --since 24h: at most this far back (a century), in seconds. */
#define AUDIT_AGO_MAX (100LL * 366 * 86400)

/* n decimal digits at *p into *out, *p moved past them: 0, else -1. */
static int
audit_digits(const char **p, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/*
 * An ISO-8601 date or time, UTC unless it says otherwise: YYYY-MM-DD,
 * then optionally T (or a space) HH:MM, :SS, a fraction of up to six
 * digits (into *usec), and Z or +HH[:MM] / -HH[:MM].
 */
static int
audit_time_iso(const char *s, time_t *out, long *usec)
{
	const char *p = s;
	struct tm tm, back;
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	time_t t;

	*usec = 0;
	if (audit_digits(&p, 4, &y) == -1 || *p++ != '-' ||
	    audit_digits(&p, 2, &mo) == -1 || *p++ != '-' ||
	    audit_digits(&p, 2, &d) == -1)
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (audit_digits(&p, 2, &h) == -1 || *p++ != ':' ||
		    audit_digits(&p, 2, &mi) == -1)
			return -1;
		if (*p == ':') {
			p++;
			if (audit_digits(&p, 2, &sec) == -1)
				return -1;
			if (*p == '.') {
				long scale = 100000;

				if (!isdigit((unsigned char)*++p))
					return -1;
				for (; isdigit((unsigned char)*p); p++) {
					if (scale == 0)
						return -1;
					*usec += (*p - '0') * scale;
					scale /= 10;
				}
			}
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			sign = *p++ == '-' ? -1 : 1;
			if (audit_digits(&p, 2, &oh) == -1)
				return -1;
			if (*p == ':')
				p++;
			if (*p != '\0' && audit_digits(&p, 2, &om) == -1)
				return -1;
			if (oh > 14 || om > 59)
				return -1;
		}
	}
	if (*p != '\0' || y < 1970 || h > 23 || mi > 59 || sec > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1 || gmtime_r(&t, &back) == NULL)
		return -1;
	/* February 30th comes back as March 2nd: refused. */
	if (back.tm_year != y - 1900 || back.tm_mon != mo - 1 ||
	    back.tm_mday != d)
		return -1;
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

/*
 * T as a UTC time "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" into out: an ISO-8601 date
 * or time, "now", or a time ago (N and one of s m h d w; to the
 * microsecond, as the rows' times are).  0, else -1.
 */
int
audit_time_parse(const char *s, const struct timespec *now, char out[32])
{
	static const struct {
		char unit;
		long long secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400},
	    {'w', 7 * 86400}};
	const char *p = s;
	long long n = 0;
	long usec = now->tv_nsec / 1000, frac;
	char day[24];
	struct tm tm;
	time_t t;
	size_t i;

	if (strcmp(s, "now") == 0)
		t = now->tv_sec;
	else if (audit_time_iso(s, &t, &frac) == 0)
		usec = frac;
	else {
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++)
			if ((n = n * 10 + (*p - '0')) > AUDIT_AGO_MAX)
				return -1;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (p[0] == units[i].unit && p[1] == '\0')
				break;
		if (i == sizeof(units) / sizeof(units[0]) ||
		    n * units[i].secs > AUDIT_AGO_MAX)
			return -1;
		t = now->tv_sec - (time_t)(n * units[i].secs);
	}
	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%06dZ", day, (int)(usec % 1000000));
	return 0;
}
