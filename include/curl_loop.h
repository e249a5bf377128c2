/*
 * curl_loop.h: one libcurl multi handle driven by loop.c.  curl says which
 * sockets to watch and when to call it back; those become loop fds and a
 * loop timer, so nothing ever blocks or polls on its own.  After curl has
 * worked, progress(arg) runs for the owner to read what finished.  Used by
 * http.c (Matrix requests) and irc.c (connecting; the socket is then IRC's).
 */
#ifndef KNEEBOT_CURL_LOOP_H
#define KNEEBOT_CURL_LOOP_H

#include <curl/curl.h>

#include "buf.h"

struct loop;
struct curl_loop;
typedef void (*curl_loop_cb)(void *arg);

/* NULL with the reason in err when libcurl cannot be set up. */
struct curl_loop *curl_loop_new(struct loop *loop, curl_loop_cb progress, void *arg, struct buf *err);
CURLM *curl_loop_multi(const struct curl_loop *cl);
/*
 * The owner watches fd itself from now on (a CONNECT_ONLY socket): what
 * curl asks about it is ignored.  -1 when that connection is gone.
 */
void curl_loop_adopt(struct curl_loop *cl, int fd);
/* Every easy handle must have been removed first. */
void curl_loop_free(struct curl_loop *cl);

#endif
