# The cart demo in a container: Debian's nginx + the module, Redis with AOF.
#
#   docker build -t cart-demo .
#   docker run --rm -p 8080:8080 cart-demo
#   curl -H 'X-User-Id: demo-user' http://127.0.0.1:8080/api/v1/cart/
#
# Same steps as on a developer machine (util/deps.sh, make build), so the
# module is built against exactly the nginx it runs in. Carts live in
# /opt/cart/build/run/redis; mount a volume there to keep them.
FROM debian:12

WORKDIR /opt/cart
COPY . .

# A build/ copied from the host holds configure output with the host's
# paths: always configure afresh inside the image.
RUN rm -rf build \
 && util/deps.sh \
 && make build \
 && rm -rf /var/lib/apt/lists/*

# The example config listens on loopback only; a container must listen on
# its own interface for the published port to reach nginx.
RUN sed -i 's/listen 127.0.0.1:@PORT@;/listen @PORT@;/' conf/nginx.conf \
 && grep -q '^ *listen @PORT@;' conf/nginx.conf

EXPOSE 8080

# Redis in the background, nginx in the foreground; SIGTERM (docker stop)
# stops both cleanly, Redis flushing its AOF.
CMD ["util/run.sh", "foreground"]
