/* Baseline for the Lua client: N sequential GETs on one reused libcurl easy handle.
 * Build: cc -O2 -o build/c_loop bench/c_loop.c -lcurl
 * Usage: build/c_loop URL N [HEADER...]  -> prints calls_per_sec=<float>
 * The HEADERs are the whole header list (bench/client.lua passes the ones the client sends).
 * For https URLs, C_LOOP_CAINFO names the CA file that verifies the server. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  char *data;
  size_t len, cap;
} sink;

/* Keeps the body like the Lua core does, so both sides pay for the copy. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  sink *s = ud;
  size_t len = size * n;
  if (s->len + len > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    char *d;
    while (cap < s->len + len) cap *= 2;
    d = realloc(s->data, cap);
    if (!d) return 0;
    s->data = d;
    s->cap = cap;
  }
  memcpy(s->data + s->len, p, len);
  s->len += len;
  return len;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
  CURL *easy;
  struct curl_slist *headers = NULL;
  sink body = {NULL, 0, 0};
  long n, i, status = 0;
  double start, elapsed;

  if (argc < 3 || (n = strtol(argv[2], NULL, 10)) <= 0) {
    fprintf(stderr, "usage: %s URL N [HEADER...]\n", argv[0]);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  easy = curl_easy_init();
  if (!easy) return 1;
  /* The request headers come from the caller, so both sides send the same bytes. */
  for (i = 3; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
  curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  if (getenv("C_LOOP_CAINFO")) curl_easy_setopt(easy, CURLOPT_CAINFO, getenv("C_LOOP_CAINFO"));
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);

  /* One untimed call first: the Lua side's connection (and TLS session) is warm too. */
  if (curl_easy_perform(easy) != CURLE_OK) {
    fprintf(stderr, "warm-up request failed\n");
    return 1;
  }
  start = now();
  for (i = 0; i < n; i++) {
    CURLcode rc;
    body.len = 0;
    rc = curl_easy_perform(easy);
    if (rc != CURLE_OK) {
      fprintf(stderr, "request %ld failed: %s\n", i + 1, curl_easy_strerror(rc));
      return 1;
    }
  }
  elapsed = now() - start;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  printf("calls_per_sec=%.1f\n", (double)n / elapsed);
  fprintf(stderr, "last status %ld, %ld calls in %.3f s\n", status, n, elapsed);

  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);
  free(body.data);
  curl_global_cleanup();
  return 0;
}
