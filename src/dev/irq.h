/* An interrupt line: a device raises or lowers `irq` on a controller. */
#ifndef FERRY_DEV_IRQ_H
#define FERRY_DEV_IRQ_H

struct irq_line {
    void (*set)(void *controller, unsigned irq, int level);
    void *controller;
    unsigned irq;
};

static inline void irq_set(const struct irq_line *line, int level)
{
    if (line->set)
        line->set(line->controller, line->irq, level);
}

#endif
