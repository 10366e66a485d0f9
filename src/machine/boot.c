#include "machine/boot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int boot_read_file(const char *path, uint8_t **data, size_t *size, struct error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(err, "%s is not a regular file", path);
    }
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return error_set(err, "out of memory reading %s", path);
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n <= 0) {
            free(buf);
            close(fd);
            return error_set(err, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
        }
        done += (size_t)n;
    }
    close(fd);
    *data = buf;
    *size = done;
    return 0;
}

/* Layout of the 64-byte header at the start of a RISC-V Linux Image. */
#define IMAGE_HEADER_SIZE 64
#define IMAGE_OFF_IMAGE_SIZE 16
#define IMAGE_OFF_MAGIC2 56
static const uint8_t image_magic2[4] = {'R', 'S', 'C', 0x05};

int boot_load_linux_image(struct ram *ram, const char *path, uint64_t load_addr, uint64_t *end,
                          struct error *err)
{
    uint8_t *data;
    size_t size;
    if (boot_read_file(path, &data, &size, err) < 0)
        return -1;
    if (size < IMAGE_HEADER_SIZE || memcmp(data + IMAGE_OFF_MAGIC2, image_magic2, 4) != 0) {
        free(data);
        return error_set(err, "%s is not a RISC-V Linux Image (no RSC\\x05 header magic)", path);
    }
    uint64_t image_size;
    memcpy(&image_size, data + IMAGE_OFF_IMAGE_SIZE, 8);
    if (image_size < size)
        image_size = size;
    if (!ram_contains(ram, load_addr, image_size)) {
        free(data);
        return error_set(err, "kernel %s (%llu KiB) does not fit in %llu MiB of RAM", path,
                         (unsigned long long)image_size / 1024,
                         (unsigned long long)ram->size >> 20);
    }
    memcpy(ram_host(ram, load_addr), data, size);
    ram_mark_dirty(ram, load_addr, size);
    free(data);
    *end = load_addr + image_size;
    return 0;
}

static int elf_find_tohost(const uint8_t *data, size_t size, const Elf64_Ehdr *eh,
                           uint64_t *tohost)
{
    *tohost = 0;
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr))
        return 0;
    if (eh->e_shoff > size || (size - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        return -1;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(data + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *strtab = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
            strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
            return -1;
        const Elf64_Sym *sym = (const Elf64_Sym *)(data + sh[i].sh_offset);
        size_t nsym = sh[i].sh_size / sizeof(Elf64_Sym);
        const char *names = (const char *)(data + strtab->sh_offset);
        for (size_t j = 0; j < nsym; j++) {
            if (sym[j].st_name >= strtab->sh_size)
                continue;
            const char *name = names + sym[j].st_name;
            if (strnlen(name, strtab->sh_size - sym[j].st_name) < strtab->sh_size - sym[j].st_name &&
                strcmp(name, "tohost") == 0) {
                *tohost = sym[j].st_value;
                return 0;
            }
        }
    }
    return 0;
}

int boot_load_elf(struct ram *ram, const char *path, struct elf_info *info, struct error *err)
{
    uint8_t *data;
    size_t size;
    if (boot_read_file(path, &data, &size, err) < 0)
        return -1;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
    int rc = -1;
    if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
        error_set(err, "%s is not an ELF file", path);
        goto out;
    }
    if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
        eh->e_machine != EM_RISCV) {
        error_set(err, "%s is not a 64-bit little-endian RISC-V ELF", path);
        goto out;
    }
    if (eh->e_type != ET_EXEC) {
        error_set(err, "%s is not an executable ELF (type %u)", path, eh->e_type);
        goto out;
    }
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
        (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
        error_set(err, "%s has a corrupt program header table", path);
        goto out;
    }
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(data + eh->e_phoff);
    unsigned loaded = 0;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
            continue;
        if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > size ||
            ph[i].p_filesz > size - ph[i].p_offset) {
            error_set(err, "%s: segment %u is corrupt", path, i);
            goto out;
        }
        if (!ram_contains(ram, ph[i].p_paddr, ph[i].p_memsz)) {
            error_set(err, "%s: segment %u (0x%llx, %llu bytes) is outside guest RAM", path, i,
                      (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz);
            goto out;
        }
        uint8_t *dst = ram_host(ram, ph[i].p_paddr);
        memcpy(dst, data + ph[i].p_offset, ph[i].p_filesz);
        memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
        ram_mark_dirty(ram, ph[i].p_paddr, ph[i].p_memsz);
        loaded++;
    }
    if (!loaded) {
        error_set(err, "%s has no loadable segments", path);
        goto out;
    }
    info->entry = eh->e_entry;
    if (elf_find_tohost(data, size, eh, &info->tohost) < 0) {
        error_set(err, "%s has a corrupt section table", path);
        goto out;
    }
    if (info->tohost && !ram_contains(ram, info->tohost, 8)) {
        error_set(err, "%s: tohost at 0x%llx is outside guest RAM", path,
                  (unsigned long long)info->tohost);
        goto out;
    }
    rc = 0;
out:
    free(data);
    return rc;
}
