/* The ceiling of this machine for the HTTP benchmark: a minimal libmicrohttpd server answering a fixed
 * 60-byte JSON body, configured like sessiond (epoll, internal thread pool, loopback, answer on the
 * second handler call so keep-alive is kept, one response object per request).
 * Build: cc -O2 -o baseline baseline.c -lmicrohttpd ; run: ./baseline PORT [THREADS] [session]
 * ("session": answer like GET /v1/session instead, see session_body). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"status\":\"ok\",\"padding\":\"01234567890123456789012345678901\"}";

/* "session" mode: the answer of GET /v1/session (same headers, a 244-byte body of the same shape),
   so that the benchmark can tell the cost of the answer itself from the cost of producing it. */
static const char session_body[] =
    "{\"id\":\"DXxqLTO9P0rE1DukhyOdxw\",\"username\":\"user-11@example.com\",\"createdAt\":\"2026-11-29T13:41:19.907Z\","
    "\"lastSeenAt\":\"2026-11-29T13:43:19.758Z\",\"idleExpiresAt\":\"2026-11-29T14:33:19.758Z\","
    "\"expiresAt\":\"2026-11-30T13:41:19.907Z\",\"idleTimeout\":3000}";
static int session_mode;

static enum MHD_Result handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **state) {
    static int first_call_marker;
    (void)cls; (void)url; (void)method; (void)version; (void)upload_data;
    if (*state == NULL) { *state = &first_call_marker; return MHD_YES; }
    if (*upload_data_size != 0) { *upload_data_size = 0; return MHD_YES; }
    struct MHD_Response *response;
    if (session_mode) {
        response = MHD_create_response_from_buffer(sizeof session_body - 1, (void *)session_body, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(response, "Content-Type", "application/json; charset=utf-8");
        MHD_add_response_header(response, "Cache-Control", "no-store");
        MHD_add_response_header(response, "Vary", "Accept-Encoding");
    } else {
        response = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(response, "Content-Type", "application/json");
    }
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return result;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [THREADS] [session]\n", argv[0]); return 2; }
    _Static_assert(sizeof body - 1 == 60, "the body is 60 bytes");
    _Static_assert(sizeof session_body - 1 == 244, "the session body is 244 bytes");
    session_mode = argc > 3 && strcmp(argv[3], "session") == 0;
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[1]));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned int threads = argc > 2 ? (unsigned int)atoi(argv[2]) : 2;
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, &handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (daemon == NULL) { fprintf(stderr, "cannot start\n"); return 1; }
    int received;
    sigwait(&signals, &received);
    MHD_stop_daemon(daemon);
    return 0;
}
