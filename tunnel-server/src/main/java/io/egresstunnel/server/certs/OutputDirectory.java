package io.egresstunnel.server.certs;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;

/**
 * The directory {@code certs} writes into. Private keys get mode 0600, everything else 0644. A file
 * is written to a temporary file beside it first and then renamed into place, so a reader never
 * sees half a file and a key is never readable by others, not even for a moment. Without {@code
 * force}, an existing file is never replaced.
 */
final class OutputDirectory {
  static final Set<PosixFilePermission> PRIVATE = PosixFilePermissions.fromString("rw-------");
  static final Set<PosixFilePermission> PUBLIC = PosixFilePermissions.fromString("rw-r--r--");

  private final Path dir;
  private final boolean force;
  private final List<Path> written = new ArrayList<>();

  OutputDirectory(Path dir, boolean force) throws IOException {
    this.dir = dir.toAbsolutePath().normalize();
    this.force = force;
    Files.createDirectories(this.dir);
  }

  /** The absolute path of {@code name} in the directory. */
  Path resolve(String name) {
    return dir.resolve(name);
  }

  boolean exists(String name) {
    return Files.exists(resolve(name));
  }

  /**
   * Fails, naming the first file that exists, unless {@code force}: checked before anything is
   * written, so a refused run leaves the directory as it was.
   */
  void checkNoneExist(Collection<String> names) throws FileAlreadyExistsException {
    if (force) {
      return;
    }
    for (String name : names) {
      Path p = resolve(name);
      if (Files.exists(p)) {
        throw new FileAlreadyExistsException(
            p.toString(), null, "exists; pass --force to overwrite it");
      }
    }
  }

  void writePrivate(String name, byte[] content) throws IOException {
    write(name, content, PRIVATE);
  }

  void writePublic(String name, byte[] content) throws IOException {
    write(name, content, PUBLIC);
  }

  /** Every file written so far, in order. */
  List<Path> written() {
    return List.copyOf(written);
  }

  private void write(String name, byte[] content, Set<PosixFilePermission> mode)
      throws IOException {
    Path target = resolve(name);
    // createTempFile makes the file 0600 on POSIX file systems; the final mode is set before the
    // rename, so the target never has any other.
    Path tmp = Files.createTempFile(dir, "." + name + ".", ".tmp");
    try {
      Files.write(tmp, content);
      PosixFileAttributeView posix = Files.getFileAttributeView(tmp, PosixFileAttributeView.class);
      if (posix != null) {
        posix.setPermissions(mode);
      }
      if (force) {
        Files.move(
            tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } else {
        Files.move(tmp, target);
      }
      written.add(target);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }
}
