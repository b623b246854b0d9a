package io.egresstunnel.proto.net;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.Collection;
import java.util.stream.Collectors;

/**
 * Addresses as operators write them, for logs, errors and status: {@code 10.0.0.5:8091}, {@code
 * [fd00::5]:8091}, {@code 10.0.0.5}, without the {@code /} that {@link InetAddress#toString} puts
 * before a literal.
 */
public final class Addresses {
  private Addresses() {}

  /** {@code host:port} ({@code [v6]:port}); a Unix socket as its path; null as {@code -}. */
  public static String text(SocketAddress a) {
    if (a instanceof InetSocketAddress i) {
      String host = i.getHostString();
      return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + i.getPort();
    }
    return a == null ? "-" : a.toString();
  }

  /**
   * As {@link #text(SocketAddress)}, but always the IP literal, never a host name: for telling two
   * peers apart, where {@code localhost:8091} and {@code 127.0.0.1:8091} are one.
   */
  public static String ip(SocketAddress a) {
    if (a instanceof InetSocketAddress i && i.getAddress() != null) {
      return text(new InetSocketAddress(i.getAddress().getHostAddress(), i.getPort()));
    }
    return text(a);
  }

  /** The address's literal: {@code 10.0.0.5}, {@code fd00::5}. */
  public static String text(InetAddress a) {
    return a == null ? "-" : a.getHostAddress();
  }

  /** {@code [10.0.0.5, fd00::5]}. */
  public static String text(Collection<InetAddress> addresses) {
    return addresses.stream().map(Addresses::text).collect(Collectors.joining(", ", "[", "]"));
  }
}
