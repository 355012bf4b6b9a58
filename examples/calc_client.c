/*
 * calc_client.c - calls each procedure of calc.x once and prints what came
 * back.  Every call is an ordinary C call to a stub rpcgen wrote (in the
 * generated calc_clnt.c); its return value says what happened, as
 * rpc_call's does, and -EPROTONOSUPPORT means the server speaks another
 * version of calc.x.
 *
 * Usage: calc_client host port
 */
#include <stdio.h>
#include <stdlib.h>

#include "calc.h"

/* Prints a failed call's outcome; returns 1 for main's exit status. */
static int failed(const char *what, int rc)
{
    if (rc > 0)
        printf("%s: the server says error %d\n", what, rc);
    else
        printf("%s: %s\n", what, rpc_strerror(rc));
    return 1;
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: calc_client host port\n");
        return 2;
    }
    struct rpc_client *c;
    int rc = rpc_client_open(argv[1], atoi(argv[2]), NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "calc_client: %s\n", rpc_strerror(rc));
        return 1;
    }
    int bad = 0;
    int64_t sum;
    if ((rc = calc_add(c, 40, 2, &sum)) == 0)
        printf("add(40, 2) = %lld\n", (long long)sum);
    else
        bad |= failed("add", rc);

    double q;
    if ((rc = calc_divide(c, 1, 4, &q)) == 0)
        printf("divide(1, 4) = %g\n", q);
    else
        bad |= failed("divide", rc);
    rc = calc_divide(c, 1, 0, &q); /* the server's own error code 1 */
    printf("divide(1, 0): %s\n",
           rc == 1 ? "refused, division by zero" : "unexpected outcome");
    bad |= rc != 1;

    double values[] = {3, 1, 4, 1, 5, 9, 2, 6};
    struct calc_stats st;
    if ((rc = calc_summarize(c, values, 8, &st)) == 0)
        printf("summarize: count %u, mean %g, min %g, max %g\n",
               (unsigned)st.count, st.mean, st.min, st.max);
    else
        bad |= failed("summarize", rc);

    char *greeting;
    if ((rc = calc_greet(c, "world", &greeting)) == 0) {
        printf("greet: %s\n", greeting);
        free(greeting); /* results that point to memory are ours */
    } else {
        bad |= failed("greet", rc);
    }
    rpc_client_close(c);
    return bad;
}
