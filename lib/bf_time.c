/* bf_time: FHIR date/time helpers (see bf_time.h). */
#include "bf_time.h"

#include <apr_strings.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

/* Read exactly n digits from *s into *v, advancing *s. */
static bool digits(const char **s, int n, int *v)
{
    int i, x = 0;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return false;
        x = x * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *v = x;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long long days_from_civil(int y, int m, int d)
{
    long long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool bf_time_parse_instant(const char *s, apr_time_t *out)
{
    static const int mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    long long usec = 0, scale = 100000, secs;

    if (!s)
        return false;
    if (!digits(&s, 4, &y) || *s++ != '-' || !digits(&s, 2, &mo) ||
        *s++ != '-' || !digits(&s, 2, &d) || *s++ != 'T' ||
        !digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) ||
        *s++ != ':' || !digits(&s, 2, &sec))
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return false;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return false;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s)) {
            usec += (*s - '0') * scale;
            scale /= 10;
            s++;
        }
    }
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
        if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) ||
            oh > 14 || om > 59)
            return false;
    } else {
        return false;
    }
    if (*s)
        return false;
    if (sec == 60)
        sec = 59; /* leap second: close enough for a filter */
    secs = days_from_civil(y, mo, d) * 86400LL + h * 3600 + mi * 60 + sec -
           sign * (oh * 3600 + om * 60);
    if (out)
        *out = (apr_time_t)secs * APR_USEC_PER_SEC + usec;
    return true;
}

const char *bf_time_instant(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    apr_time_exp_gmt(&x, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                        x.tm_year + 1900, x.tm_mon + 1, x.tm_mday, x.tm_hour,
                        x.tm_min, x.tm_sec, (int)x.tm_usec);
}
