#ifndef CMICROHTTPD_SHIM_H
#define CMICROHTTPD_SHIM_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <stdio.h>
#include <microhttpd.h>
/* Not libmicrohttpd, but needed next to it: MicroHTTP watches suspended connections for hang-ups with
   epoll (libmicrohttpd does not watch suspended connections). Glibc's Swift module lacks these headers. */
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// `MHD_start_daemon` is C-variadic; Swift cannot call it. The options are passed as one
/// `MHD_OPTION_ARRAY` built in Swift (terminated by an `MHD_OPTION_END` item).
static inline struct MHD_Daemon *CMicroHTTPD_start_daemon(unsigned int flags,
                                                          uint16_t port,
                                                          MHD_AcceptPolicyCallback accept_policy,
                                                          void *accept_policy_cls,
                                                          MHD_AccessHandlerCallback handler,
                                                          void *handler_cls,
                                                          const struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, port, accept_policy, accept_policy_cls, handler, handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// The port the daemon is bound to (useful with port 0), or 0 if unknown.
/// `MHD_get_daemon_info` is C-variadic.
static inline uint16_t CMicroHTTPD_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/// The socket of a connection, or -1. `MHD_get_connection_info` is C-variadic.
static inline int CMicroHTTPD_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : (int) info->connect_fd;
}

/// The socket context of a connection (set by the `MHD_OPTION_NOTIFY_CONNECTION` callback), or NULL.
/// `MHD_get_connection_info` is C-variadic.
static inline void *CMicroHTTPD_connection_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == NULL ? NULL : info->socket_context;
}

/// The client's address of a connection, or NULL. `MHD_get_connection_info` is C-variadic.
static inline const struct sockaddr *CMicroHTTPD_connection_client_address(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info == NULL ? NULL : info->client_addr;
}

/// A log sink Swift can implement (`MHD_LogCallback` takes a `va_list`, which Swift cannot receive).
typedef void (*CMicroHTTPD_LogSink)(void *cls, const char *message);

/// The `cls` of `CMicroHTTPD_log_adapter`; must outlive the daemon.
struct CMicroHTTPD_Logger {
    CMicroHTTPD_LogSink sink;
    void *cls;
};

static inline void CMicroHTTPD_log_adapter(void *cls, const char *format, va_list arguments) {
    const struct CMicroHTTPD_Logger *logger = (const struct CMicroHTTPD_Logger *) cls;
    char message[512];
    vsnprintf(message, sizeof message, format, arguments);
    logger->sink(logger->cls, message);
}

/// The `MHD_OPTION_EXTERNAL_LOGGER` item routing libmicrohttpd's log through `logger`.
static inline struct MHD_OptionItem CMicroHTTPD_logger_option(struct CMicroHTTPD_Logger *logger) {
    struct MHD_OptionItem item = { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) &CMicroHTTPD_log_adapter, logger };
    return item;
}

#endif
