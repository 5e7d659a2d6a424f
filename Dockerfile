# The Regent agent's image (scripts/release.sh builds it from dist/, with the
# binaries it made: docker build's context is the dist directory). One
# container per database host, beside mysqld, with the host's network:
#
#   docker run -d --name regent --network host \
#     -v /etc/regent:/etc/regent:ro -v /var/lib/regent:/var/lib/regent \
#     --env-file /etc/regent/regent.env regent:VERSION
#
# Liveness probe: GET /liveness; readiness: GET /readiness (README "HTTP
# API"); /health is 503 while mysqld is down and must not restart the agent.
#
# BASE: debian:12.11-slim by default, a Debian point release rather than the
# moving bookworm-slim; pin its digest in your registry for byte-for-byte
# reproducible images. Not pulled on the project's test machines (nothing
# can be): the release test builds from the local base image.
# Machines that cannot pull build from the locally made base image
# (REGENT_IMAGE_BASE=regent-base:bookworm).
ARG BASE=debian:12.11-slim
FROM ${BASE}
ARG ARCH=amd64
RUN (getent group regent >/dev/null || groupadd --system regent) \
 && (getent passwd regent >/dev/null || useradd --system --gid regent \
      --home-dir /var/lib/regent --shell /usr/sbin/nologin regent) \
 && install -d -o root -g regent -m 750 /etc/regent /etc/regent/tls \
 && install -d -o regent -g regent -m 750 /var/lib/regent
COPY linux_${ARCH}/regent linux_${ARCH}/regentctl /usr/bin/
USER regent
VOLUME /var/lib/regent
EXPOSE 7000 8008
ENTRYPOINT ["/usr/bin/regent"]
CMD ["--config", "/etc/regent/regent.yaml"]
