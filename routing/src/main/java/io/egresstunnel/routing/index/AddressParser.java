package io.egresstunnel.routing.index;

/**
 * Parses IP literals into primitive fields without allocating: IPv4 into {@link #v4}, IPv6 into
 * {@link #hi}/{@link #lo}. An IPv4-mapped IPv6 literal ({@code ::ffff:a.b.c.d}) parses as IPv4.
 * Anything else (a host name, a zone id, brackets) is {@link #NAME}. One instance per thread; it is
 * reused for every lookup.
 */
public final class AddressParser {
  public static final int NAME = 0;
  public static final int V4 = 4;
  public static final int V6 = 6;

  /** The IPv4 address, as an unsigned 32-bit value in an int. */
  public int v4;

  /** The IPv6 address: high and low 64 bits. */
  public long hi;

  public long lo;

  private final int[] groups = new int[8];

  /** Parses {@code s} and returns {@link #V4}, {@link #V6} or {@link #NAME}. */
  public int parse(CharSequence s) {
    int len = s.length();
    if (len == 0) {
      return NAME;
    }
    boolean colon = false;
    for (int i = 0; i < len; i++) {
      if (s.charAt(i) == ':') {
        colon = true;
        break;
      }
    }
    if (!colon) {
      long v = parseV4(s, 0, len);
      if (v < 0) {
        return NAME;
      }
      v4 = (int) v;
      return V4;
    }
    if (!parseV6(s, len)) {
      return NAME;
    }
    if (hi == 0 && (lo >>> 32) == 0xFFFFL) {
      v4 = (int) lo; // IPv4-mapped
      return V4;
    }
    return V6;
  }

  /** Dotted quad in {@code s[from, to)}; -1 if it is not one. */
  static long parseV4(CharSequence s, int from, int to) {
    long value = 0;
    int octets = 0;
    int i = from;
    while (i < to) {
      int start = i;
      int octet = 0;
      while (i < to && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
        octet = octet * 10 + (s.charAt(i) - '0');
        if (octet > 255 || i - start >= 3) {
          return -1;
        }
        i++;
      }
      if (i == start) {
        return -1;
      }
      value = (value << 8) | octet;
      octets++;
      if (i < to) {
        if (s.charAt(i) != '.' || octets == 4) {
          return -1;
        }
        i++;
        if (i == to) {
          return -1;
        }
      }
    }
    return octets == 4 ? value : -1;
  }

  private boolean parseV6(CharSequence s, int len) {
    int[] g = groups;
    int count = 0;
    int gap = -1; // index in groups where "::" stands
    int i = 0;
    if (len >= 2 && s.charAt(0) == ':' && s.charAt(1) == ':') {
      gap = 0;
      i = 2;
    } else if (s.charAt(0) == ':') {
      return false;
    }
    while (i < len) {
      int start = i;
      int value = 0;
      while (i < len && hex(s.charAt(i)) >= 0) {
        value = (value << 4) | hex(s.charAt(i));
        if (i - start >= 4) {
          return false;
        }
        i++;
      }
      if (i < len && s.charAt(i) == '.') {
        // An IPv4 tail: the last two groups.
        long v4tail = parseV4(s, start, len);
        if (v4tail < 0 || count > 6) {
          return false;
        }
        g[count++] = (int) (v4tail >>> 16);
        g[count++] = (int) (v4tail & 0xFFFF);
        i = len;
        break;
      }
      if (i == start) {
        return false;
      }
      if (count == 8) {
        return false;
      }
      g[count++] = value;
      if (i == len) {
        break;
      }
      if (s.charAt(i) != ':') {
        return false; // a zone id or garbage
      }
      i++;
      if (i < len && s.charAt(i) == ':') {
        if (gap >= 0) {
          return false;
        }
        gap = count;
        i++;
      } else if (i == len) {
        return false;
      }
    }
    if (gap < 0 ? count != 8 : count > 7) {
      return false;
    }
    long h = 0;
    long l = 0;
    int missing = 8 - count;
    for (int k = 0, src = 0; k < 8; k++) {
      int value;
      if (gap >= 0 && k >= gap && k < gap + missing) {
        value = 0;
      } else {
        value = g[src++];
      }
      if (k < 4) {
        h = (h << 16) | value;
      } else {
        l = (l << 16) | value;
      }
    }
    hi = h;
    lo = l;
    return true;
  }

  private static int hex(char c) {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  }
}
