package io.egresstunnel.server;

import io.egresstunnel.proto.Limits;
import io.netty.util.NetUtil;

/**
 * The target of a CONNECT, from its request line in authority form: {@code host:port}, {@code
 * 10.0.0.1:10250} or {@code [fd00::1]:10250}. The host has no brackets here.
 */
record ConnectTarget(String host, int port) {

  static ConnectTarget parse(String authority) {
    String expected = "expected host:port, got '" + printable(authority) + "'";
    int colon = authority.lastIndexOf(':');
    if (colon <= 0 || colon == authority.length() - 1) {
      throw new IllegalArgumentException("malformed CONNECT target: " + expected);
    }
    String host = authority.substring(0, colon);
    String portText = authority.substring(colon + 1);
    if (host.startsWith("[")) {
      if (!host.endsWith("]")
          || !NetUtil.isValidIpV6Address(host.substring(1, host.length() - 1))) {
        throw new IllegalArgumentException("malformed IPv6 literal in CONNECT target: " + expected);
      }
      host = host.substring(1, host.length() - 1);
    } else if (host.indexOf(':') >= 0) {
      throw new IllegalArgumentException(
          "an IPv6 CONNECT target needs brackets ([addr]:port): " + expected);
    }
    int port;
    try {
      port = portText.chars().allMatch(Character::isDigit) ? Integer.parseInt(portText) : -1;
    } catch (NumberFormatException e) {
      port = -1;
    }
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(
          "malformed CONNECT target: port must be 1..65535, " + expected);
    }
    try {
      Limits.checkName("host", host);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("malformed CONNECT target: " + e.getMessage(), e);
    }
    return new ConnectTarget(host, port);
  }

  private static String printable(String s) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length() && i < 300; i++) {
      char c = s.charAt(i);
      b.append(c < 0x20 || c == 0x7F ? '?' : c);
    }
    return b.toString();
  }

  @Override
  public String toString() {
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }
}
