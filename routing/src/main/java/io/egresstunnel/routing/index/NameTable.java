package io.egresstunnel.routing.index;

import java.util.Locale;

/** An immutable open-addressing map from host names, compared ignoring ASCII case, to ints. */
final class NameTable {
  private final String[] keys; // lower case
  private final int[] values;
  private final int mask;

  NameTable(String[] names, int[] v, int n) {
    int capacity = Integer.highestOneBit(Math.max(4, n * 2 - 1)) << 1;
    keys = new String[capacity];
    values = new int[capacity];
    mask = capacity - 1;
    for (int i = 0; i < n; i++) {
      String key = names[i].toLowerCase(Locale.ROOT);
      int slot = hash(key) & mask;
      while (keys[slot] != null && !keys[slot].equals(key)) {
        slot = (slot + 1) & mask;
      }
      keys[slot] = key;
      values[slot] = v[i];
    }
  }

  int get(CharSequence name) {
    int slot = hash(name) & mask;
    while (true) {
      String k = keys[slot];
      if (k == null) {
        return -1;
      }
      if (equalsIgnoreAsciiCase(k, name)) {
        return values[slot];
      }
      slot = (slot + 1) & mask;
    }
  }

  private static int hash(CharSequence s) {
    int h = 0;
    for (int i = 0; i < s.length(); i++) {
      h = 31 * h + lower(s.charAt(i));
    }
    return IntIntTable.mix(h);
  }

  private static boolean equalsIgnoreAsciiCase(String lowerKey, CharSequence s) {
    if (lowerKey.length() != s.length()) {
      return false;
    }
    for (int i = 0; i < s.length(); i++) {
      if (lowerKey.charAt(i) != lower(s.charAt(i))) {
        return false;
      }
    }
    return true;
  }

  private static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char) (c + 32) : c;
  }
}
