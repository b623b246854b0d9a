package io.egresstunnel.routing;

/**
 * Decides the {@link Route} of each connection the apiserver asks for. Implementations are
 * thread-safe, answer from memory and never resolve names (no DNS).
 */
public interface Router {

  /**
   * The route to {@code host:port}.
   *
   * @param host an IPv4 literal, an IPv6 literal without brackets, or a host name
   * @param port the target port
   */
  Route route(String host, int port);

  /** This router, and {@code next} for what this one leaves to the {@link Route#DEFAULT}. */
  default Router orElse(Router next) {
    Router first = this;
    return (host, port) -> {
      Route r = first.route(host, port);
      return r == Route.DEFAULT ? next.route(host, port) : r;
    };
  }
}
